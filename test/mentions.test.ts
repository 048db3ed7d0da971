import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { BLOCK_USER, DELETE_MESSAGE, LEAVE_CHAT, MUTE_CHAT, REGISTER_PUSH } from './support/operations.ts';
import { startPushApp } from './support/push-app.ts';
import type { PushService } from './support/push-service.ts';

const MENTIONED = 'id mentions { id } mentionsAll';
const SEND = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { ${MENTIONED} } }`;
const EDIT = `mutation ($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { ${MENTIONED} } }`;
const UNREAD = `query ($c: ID!) { chat(id: $c) { unreadCount unreadMentionCount } }`;
const MARK_READ = `mutation ($c: ID!, $m: ID!) { markRead(chatId: $c, messageId: $m) { unreadMentionCount } }`;
const MENTIONS = `query ($first: Int, $after: String) { mentions(first: $first, after: $after) {
  edges { cursor node { id text chat { id } } } pageInfo { hasNextPage endCursor } } }`;

let push: PushService;
let app: App;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let stranger: TestUser;
let group: string;

let stopApp: () => Promise<void>;

beforeAll(async () => {
  ({ app, push, stop: stopApp } = await startPushApp('kocmoc_mentions'));
  [alice, bob, carol, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Mentions', memberIds: [bob.id, carol.id] });
});
afterAll(() => stopApp?.());

const send = (user: TestUser, chatId: string, text: string) =>
  gql(app, SEND, { input: { chatId, kind: 'TEXT', text } }, { token: user.accessToken }).then((r) => {
    if (!r.data?.sendMessage) throw new Error(JSON.stringify(r.errors));
    return r.data.sendMessage as { id: string; mentions: Array<{ id: string }>; mentionsAll: boolean };
  });
const ids = (users: Array<{ id: string }>) => users.map((u) => u.id).sort();
const unread = async (user: TestUser, chatId: string) => (await gql(app, UNREAD, { c: chatId }, { token: user.accessToken })).data.chat;

describe('resolving mentions', () => {
  it('resolves @username of members only, once each, case-insensitively, not inside words or emails', async () => {
    const sent = await send(
      alice,
      group,
      `@${bob.username.toUpperCase()} and @${carol.username}, also @${bob.username}; not @${stranger.username}, @nobody_here, x@${carol.username}, ${carol.username}@example.com, @${alice.username}`,
    );
    expect(ids(sent.mentions)).toEqual(ids([bob, carol]));
    expect(sent.mentionsAll).toBe(false);
    const plain = await send(alice, group, `mail ${bob.username}@example.com or a@${bob.username}`);
    expect(plain.mentions).toEqual([]);
  });

  it('lets group owners and admins mention @all, not plain members, and never in a direct chat', async () => {
    const byOwner = await send(alice, group, 'hello @all');
    expect(byOwner.mentionsAll).toBe(true);
    expect(byOwner.mentions).toEqual([]);
    expect(await app.services.prisma.messageMention.count({ where: { messageId: byOwner.id } })).toBe(2);

    const byMember = await send(bob, group, 'hey @all');
    expect(byMember.mentionsAll).toBe(false);
    expect(await app.services.prisma.messageMention.count({ where: { messageId: byMember.id } })).toBe(0);

    const direct = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const inDirect = await send(alice, direct, '@all of you');
    expect(inDirect.mentionsAll).toBe(false);
    expect((await send(alice, direct, `@${bob.username} you`)).mentions).toEqual([{ id: bob.id }]);
  });

  it('resolves again when the text is edited', async () => {
    const sent = await send(alice, group, `ping @${bob.username}`);
    const edited = await gql(app, EDIT, { id: sent.id, text: `ping @${carol.username} instead` }, { token: alice.accessToken });
    expect(edited.data.editMessage.mentions).toEqual([{ id: carol.id }]);
    const cleared = await gql(app, EDIT, { id: sent.id, text: 'nobody' }, { token: alice.accessToken });
    expect(cleared.data.editMessage.mentions).toEqual([]);
  });
});

describe('unreadMentionCount and mentions', () => {
  it("counts the viewer's unread mentions until read, leaving deleted ones out", async () => {
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Counting', memberIds: [bob.id, carol.id] });
    await sendText(app, alice, chatId, 'no mention');
    const first = await send(alice, chatId, `@${bob.username} one`);
    await send(carol, chatId, `@${bob.username} two`);
    const third = await send(alice, chatId, '@all three');
    expect(await unread(bob, chatId)).toEqual({ unreadCount: 4, unreadMentionCount: 3 });
    expect((await unread(carol, chatId)).unreadMentionCount).toBe(1);

    await gql(app, DELETE_MESSAGE, { id: third.id }, { token: alice.accessToken });
    expect((await unread(bob, chatId)).unreadMentionCount).toBe(2);
    const read = await gql(app, MARK_READ, { c: chatId, m: first.id }, { token: bob.accessToken });
    expect(read.data.markRead.unreadMentionCount).toBe(1);
  });

  it('lists mentions across chats newest first, page by page, and forgets chats the viewer left', async () => {
    const [dave, erin] = await Promise.all([registerUser(app), registerUser(app)]);
    const one = await createChat(app, erin, { kind: 'GROUP', title: 'One', memberIds: [dave.id] });
    const two = await createChat(app, erin, { kind: 'GROUP', title: 'Two', memberIds: [dave.id] });
    const sent = [];
    for (const chatId of [one, two, one, two, one]) sent.push(await send(erin, chatId, `@${dave.username} #${sent.length}`));
    await send(erin, one, 'not a mention');

    const page1 = await gql(app, MENTIONS, { first: 3 }, { token: dave.accessToken });
    expect(page1.data.mentions.edges.map((e: any) => e.node.id)).toEqual(sent.slice(2).reverse().map((m) => m.id));
    expect(page1.data.mentions.pageInfo.hasNextPage).toBe(true);
    const page2 = await gql(app, MENTIONS, { first: 3, after: page1.data.mentions.pageInfo.endCursor }, { token: dave.accessToken });
    expect(page2.data.mentions.edges.map((e: any) => e.node.id)).toEqual(sent.slice(0, 2).reverse().map((m) => m.id));
    expect(page2.data.mentions.pageInfo.hasNextPage).toBe(false);

    await gql(app, LEAVE_CHAT, { chatId: two }, { token: dave.accessToken });
    const after = await gql(app, MENTIONS, { first: 10 }, { token: dave.accessToken });
    expect(after.data.mentions.edges.map((e: any) => e.node.chat.id)).toEqual([one, one, one]);
    expect((await gql(app, MENTIONS, { first: 10 }, { token: erin.accessToken })).data.mentions.edges).toEqual([]);
    expect(codeOf(await gql(app, MENTIONS, { first: 101 }, { token: dave.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, MENTIONS, { first: 1 }))).toBe('UNAUTHENTICATED');
  });
});

describe('mention pushes', () => {
  it('pushes a mention in a muted chat, but no other message there, and nothing from someone the mentioned user blocked', async () => {
    const [dave, erin, frank] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const device = push.device();
    const registered = await gql(app, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: dave.accessToken });
    expect(registered.errors).toBeUndefined();
    const chatId = await createChat(app, erin, { kind: 'GROUP', title: 'Muted', memberIds: [dave.id, frank.id] });
    await gql(app, MUTE_CHAT, { chatId }, { token: dave.accessToken });

    await sendText(app, erin, chatId, 'nothing for dave');
    const mention = await send(erin, chatId, `@${dave.username} look`);
    await push.waitFor(device, 1);
    // badge: dave's unread messages over all his chats (User.totalUnreadCount), muted ones too.
    expect(device.accepted[0]).toMatchObject({ messageId: mention.id, mention: true, unread: 2, badge: 2, body: expect.stringContaining('look') });

    await gql(app, BLOCK_USER, { userId: frank.id }, { token: dave.accessToken });
    await send(frank, chatId, `@${dave.username} hi`);
    await sendText(app, erin, chatId, 'still muted');
    await app.notifications.whenIdle();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(device.accepted).toHaveLength(1);
  });

  it('pushes the members an edit newly mentions (muted chat too), and nobody mentioned before the edit again', async () => {
    const [dave, erin, frank, grace] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    const devices = new Map<string, ReturnType<PushService['device']>>();
    for (const user of [dave, frank, grace]) {
      const device = push.device();
      devices.set(user.id, device);
      const registered = await gql(app, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: user.accessToken });
      expect(registered.errors).toBeUndefined();
    }
    const chatId = await createChat(app, erin, { kind: 'GROUP', title: 'Edited', memberIds: [dave.id, frank.id, grace.id] });
    for (const user of [dave, frank, grace]) await gql(app, MUTE_CHAT, { chatId }, { token: user.accessToken });
    await gql(app, BLOCK_USER, { userId: erin.id }, { token: grace.accessToken });

    const sent = await send(erin, chatId, `@${frank.username} first`);
    await push.waitFor(devices.get(frank.id)!, 1);
    const edited = await gql(app, EDIT, { id: sent.id, text: `@${frank.username} and @${dave.username} and @${grace.username}, see` }, { token: erin.accessToken });
    expect(ids(edited.data.editMessage.mentions)).toEqual(ids([dave, frank, grace]));
    await push.waitFor(devices.get(dave.id)!, 1);
    expect(devices.get(dave.id)!.accepted[0]).toMatchObject({ messageId: sent.id, mention: true, edited: true, body: expect.stringContaining('see') });

    // Edited again, the same people mentioned: nobody is new, nothing more is pushed.
    await gql(app, EDIT, { id: sent.id, text: `@${frank.username} and @${dave.username} and @${grace.username}, see again` }, { token: erin.accessToken });
    await app.notifications.whenIdle();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(devices.get(frank.id)!.accepted).toHaveLength(1);
    expect(devices.get(frank.id)!.accepted[0]).not.toHaveProperty('edited');
    expect(devices.get(dave.id)!.accepted).toHaveLength(1);
    // Grace blocked the sender: mentioned, but never pushed.
    expect(devices.get(grace.id)!.accepted).toHaveLength(0);
    expect(await app.services.prisma.notificationOutbox.count()).toBe(0);
  });
});
