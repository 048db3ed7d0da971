// Threads: replies under a root, summaries, the main timeline without them, live events, following
// and the pushes followers get in a muted chat. A database of its own: the app relays the whole
// push outbox, and other files' apps would take these messages' notifications (see push.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { DELETE_MESSAGE, MUTE_CHAT, REGISTER_PUSH } from './support/operations.ts';
import { startPushApp } from './support/push-app.ts';
import type { PushService } from './support/push-service.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const THREAD = `query ($id: ID!, $first: Int = 5, $after: String) { chat(id: $id) { messages(last: 30) { edges { node { id seq threadRootId
  thread { replyCount lastReplyAt viewerFollows participants(first: $first, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } } } } } } }`;
const REPLIES = `query ($id: ID!, $first: Int, $after: String) { chat(id: $id) { messages(last: 30) { edges { node { id
  threadReplies(first: $first, after: $after) { edges { node { id seq text threadRootId } } pageInfo { hasNextPage endCursor } } } } } } }`;
const REPLIES_BACK = `query ($id: ID!, $last: Int, $before: String) { chat(id: $id) { messages(last: 30) { edges { node { id
  threadReplies(last: $last, before: $before) { edges { cursor node { id text } } pageInfo { hasPreviousPage startCursor } } } } } } }`;
const TIMELINE = `query ($id: ID!, $all: Boolean) { chat(id: $id) { messages(first: 100, includeThreadReplies: $all) { edges { node { id } } } } }`;
const FOLLOW = `mutation ($m: ID!) { followThread(messageId: $m) { id thread { viewerFollows } } }`;
const UNFOLLOW = `mutation ($m: ID!) { unfollowThread(messageId: $m) { id thread { viewerFollows } } }`;

let push: PushService;
let app: App;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let group: string;
const queries: string[] = [];

let stopApp: () => Promise<void>;

beforeAll(async () => {
  ({ app, push, stop: stopApp } = await startPushApp('kocmoc_threads', { presence: { offlineGraceMs: 200 }, onQuery: (sql) => queries.push(sql) }));
  [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Threads', memberIds: [bob.id, carol.id] });
});
afterAll(() => stopApp?.());

const reply = (user: TestUser, threadRootId: string, text: string, chatId = group) => sendText(app, user, chatId, text, { threadRootId });
const sendRaw = (user: TestUser, input: Record<string, unknown>) =>
  gql(app, `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }`, { input: { chatId: group, kind: 'TEXT', text: 'x', ...input } }, { token: user.accessToken });
const nodeOf = (result: any, id: string) => result.data.chat.messages.edges.map((edge: any) => edge.node).find((node: any) => node.id === id);

describe('thread replies', () => {
  it('posts replies in the chat seq order, summarised on the root and listed in send order', async () => {
    const root = await sendText(app, alice, group, 'root');
    const first = await reply(bob, root.id, 'first');
    const between = await sendText(app, carol, group, 'main timeline');
    const second = await reply(carol, root.id, 'second');
    const third = await reply(bob, root.id, 'third');
    expect([first.seq, between.seq, second.seq, third.seq]).toEqual([root.seq + 1, root.seq + 2, root.seq + 3, root.seq + 4]);

    const summary = nodeOf(await gql(app, THREAD, { id: group, first: 1 }, { token: alice.accessToken }), root.id);
    expect(summary.threadRootId).toBeNull();
    expect(summary.thread).toMatchObject({ replyCount: 3, viewerFollows: true });
    expect(summary.thread.participants.edges.map((e: any) => e.node.id)).toEqual([bob.id]);
    expect(summary.thread.participants.pageInfo.hasNextPage).toBe(true);
    const lastReplyAt = new Date(summary.thread.lastReplyAt).getTime();
    expect(lastReplyAt).toBeGreaterThanOrEqual(new Date((await app.services.prisma.message.findUniqueOrThrow({ where: { id: third.id } })).createdAt).getTime());
    const all = nodeOf(await gql(app, THREAD, { id: group, first: 10 }, { token: alice.accessToken }), root.id);
    expect(all.thread.participants.edges.map((e: any) => e.node.id)).toEqual([bob.id, carol.id]);

    const page1 = nodeOf(await gql(app, REPLIES, { id: group, first: 2 }, { token: carol.accessToken }), root.id).threadReplies;
    expect(page1.edges.map((e: any) => e.node.text)).toEqual(['first', 'second']);
    expect(page1.edges[0].node.threadRootId).toBe(root.id);
    const page2 = nodeOf(await gql(app, REPLIES, { id: group, first: 2, after: page1.pageInfo.endCursor }, { token: carol.accessToken }), root.id)
      .threadReplies;
    expect(page2.edges.map((e: any) => e.node.text)).toEqual(['third']);
    expect(page2.pageInfo.hasNextPage).toBe(false);
    // Backwards: the newest replies first as a slice, still in send order, then the one before them.
    const back1 = nodeOf(await gql(app, REPLIES_BACK, { id: group, last: 2 }, { token: carol.accessToken }), root.id).threadReplies;
    expect(back1.edges.map((e: any) => e.node.id)).toEqual([second.id, third.id]);
    expect(back1.pageInfo.hasPreviousPage).toBe(true);
    const back2 = nodeOf(await gql(app, REPLIES_BACK, { id: group, last: 2, before: back1.pageInfo.startCursor }, { token: carol.accessToken }), root.id)
      .threadReplies;
    expect(back2.edges.map((e: any) => e.node.id)).toEqual([first.id]);
    expect(back2.pageInfo.hasPreviousPage).toBe(false);
    const beforeThird = nodeOf(await gql(app, REPLIES_BACK, { id: group, last: 1, before: back1.edges[1].cursor }, { token: carol.accessToken }), root.id)
      .threadReplies;
    expect(beforeThird.edges.map((e: any) => e.node.text)).toEqual(['second']);

    // Deleted replies are not counted.
    await gql(app, DELETE_MESSAGE, { id: third.id }, { token: bob.accessToken });
    expect(nodeOf(await gql(app, THREAD, { id: group, first: 10 }, { token: alice.accessToken }), root.id).thread.replyCount).toBe(2);
  });

  it('leaves replies out of Chat.messages unless includeThreadReplies', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Timeline', memberIds: [bob.id] });
    const root = await sendText(app, alice, chat, 'root');
    const threadReply = await reply(bob, root.id, 'in thread', chat);
    const after = await sendText(app, bob, chat, 'after');
    const ids = async (all?: boolean) =>
      (await gql(app, TIMELINE, { id: chat, all }, { token: alice.accessToken })).data.chat.messages.edges.map((e: any) => e.node.id);
    expect(await ids()).toEqual([root.id, after.id]);
    expect(await ids(false)).toEqual([root.id, after.id]);
    expect(await ids(true)).toEqual([root.id, threadReply.id, after.id]);
    const plainResult = await gql(app, THREAD, { id: chat }, { token: alice.accessToken });
    expect(plainResult.errors).toBeUndefined();
    const plain = nodeOf(plainResult, after.id);
    expect(plain.thread).toBeNull();
  });

  it('refuses roots outside the chat, replies as roots, deleted roots, and strangers', async () => {
    const other = await createChat(app, alice, { kind: 'GROUP', title: 'Other', memberIds: [bob.id] });
    const elsewhere = await sendText(app, alice, other, 'elsewhere');
    const root = await sendText(app, alice, group, 'root');
    const threadReply = await reply(bob, root.id, 'reply');
    const gone = await sendText(app, alice, group, 'gone');
    await gql(app, DELETE_MESSAGE, { id: gone.id }, { token: alice.accessToken });
    for (const threadRootId of [elsewhere.id, threadReply.id, gone.id, '00000000-0000-7000-8000-000000000000']) {
      const result = await sendRaw(bob, { threadRootId });
      expect(codeOf(result), threadRootId).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe('input.threadRootId');
    }
    const stranger = await registerUser(app);
    expect(codeOf(await sendRaw(stranger, { threadRootId: root.id }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, FOLLOW, { m: root.id }, { token: stranger.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, FOLLOW, { m: threadReply.id }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });

  it('reads thread summaries for a page of roots in a bounded number of queries', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'N+1', memberIds: [bob.id, carol.id] });
    for (let i = 0; i < 20; i++) {
      const root = await sendText(app, alice, chat, `root ${i}`);
      await reply(i % 2 ? bob : carol, root.id, `reply ${i}`, chat);
    }
    const count = async (last: number) => {
      await app.notifications.whenIdle();
      queries.length = 0;
      const result = await gql(
        app,
        `query ($id: ID!, $last: Int) { chat(id: $id) { messages(last: $last) { edges { node { id thread { replyCount viewerFollows participants { edges { node { id username } } } } } } } } }`,
        { id: chat, last },
        { token: alice.accessToken },
      );
      expect(result.data.chat.messages.edges.every((e: any) => e.node.thread.replyCount === 1)).toBe(true);
      return queries.length;
    };
    // Background work of the app (presence grace timers, job polls) can land a query inside one
    // window; it only ever adds, so the fewest of three reads is the page's own count.
    const fewest = async (last: number) => Math.min(await count(last), await count(last), await count(last));
    const small = await fewest(2);
    expect(await fewest(20)).toBe(small);
  });
});

describe('messageEvents', () => {
  it('carries threadRootId for a thread reply', async () => {
    const { url } = await app.start();
    const connection = connect(url, carol.accessToken);
    const events = subscribe(connection, `subscription ($chatId: ID) { messageEvents(chatId: $chatId) { type threadRootId message { id threadRootId } } }`, {
      chatId: group,
    });
    try {
      await connection.connected;
      await settle();
      const root = await sendText(app, alice, group, 'live root');
      const live = await reply(bob, root.id, 'live reply');
      const received = [await events.next(), await events.next()];
      expect(received.map((event: any) => event.data.messageEvents)).toEqual([
        { type: 'CREATED', threadRootId: null, message: { id: root.id, threadRootId: null } },
        { type: 'CREATED', threadRootId: root.id, message: { id: live.id, threadRootId: root.id } },
      ]);
    } finally {
      await connection.dispose();
    }
  });
});

describe('following', () => {
  it('follows as root sender or participant, and follows or unfollows on request', async () => {
    const root = await sendText(app, alice, group, 'follow me');
    await reply(bob, root.id, 'reply');
    const follows = async (user: TestUser) => nodeOf(await gql(app, THREAD, { id: group }, { token: user.accessToken }), root.id).thread.viewerFollows;
    expect([await follows(alice), await follows(bob), await follows(carol)]).toEqual([true, true, false]);
    expect((await gql(app, UNFOLLOW, { m: root.id }, { token: bob.accessToken })).data.unfollowThread.thread.viewerFollows).toBe(false);
    expect((await gql(app, FOLLOW, { m: root.id }, { token: carol.accessToken })).data.followThread.thread.viewerFollows).toBe(true);
    // A participant's unfollow stands after they reply again.
    await reply(bob, root.id, 'again');
    expect([await follows(alice), await follows(bob), await follows(carol)]).toEqual([true, false, true]);
  });

  it('pushes replies to followers even in a muted chat, and not to members who do not follow', async () => {
    const [dave, erin, frank] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const devices = { dave: push.device(), erin: push.device(), frank: push.device() };
    for (const [user, device] of [[dave, devices.dave], [erin, devices.erin], [frank, devices.frank]] as const) {
      const registered = await gql(app, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: user.accessToken });
      expect(registered.errors).toBeUndefined();
    }
    const chat = await createChat(app, dave, { kind: 'GROUP', title: 'Muted thread', memberIds: [erin.id, frank.id] });
    for (const user of [dave, erin, frank]) await gql(app, MUTE_CHAT, { chatId: chat }, { token: user.accessToken });
    const root = await sendText(app, dave, chat, 'root in a muted chat');
    await gql(app, FOLLOW, { m: root.id }, { token: frank.accessToken });
    const threadReply = await reply(erin, root.id, 'reply in a muted chat', chat);
    // dave sent the root, frank follows; erin sent the reply.
    await push.waitFor(devices.dave, 1);
    await push.waitFor(devices.frank, 1);
    expect(devices.dave.accepted[0]).toMatchObject({ chatId: chat, messageId: threadReply.id });
    expect(devices.frank.accepted[0]).toMatchObject({ chatId: chat, messageId: threadReply.id });

    // Unfollowed: nothing more for frank; a main-timeline message in the muted chat reaches nobody.
    await gql(app, UNFOLLOW, { m: root.id }, { token: frank.accessToken });
    const second = await reply(erin, root.id, 'second reply', chat);
    await sendText(app, erin, chat, 'muted main timeline');
    await push.waitFor(devices.dave, 2);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(devices.dave.accepted[1]).toMatchObject({ messageId: second.id });
    expect(devices.dave.accepted).toHaveLength(2);
    expect(devices.frank.accepted).toHaveLength(1);
    expect(devices.erin.requests).toHaveLength(0);
  });
});

describe('unread counts', () => {
  it('leave thread replies out of unreadCount, me.totalUnreadCount and push badges, but count their mentions', async () => {
    const [dave, erin] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device();
    const registered = await gql(app, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: dave.accessToken });
    expect(registered.errors).toBeUndefined();
    const chat = await createChat(app, erin, { kind: 'GROUP', title: 'Unread threads', memberIds: [dave.id] });
    const root = await sendText(app, erin, chat, 'root on the main timeline');
    await reply(erin, root.id, 'reply one', chat);
    await reply(erin, root.id, 'reply two', chat);
    const mention = await reply(erin, root.id, `@${dave.username} reply three`, chat);

    const counts = await gql(app, `query ($c: ID!) { me { totalUnreadCount } chat(id: $c) { unreadCount unreadMentionCount } }`, { c: chat }, { token: dave.accessToken });
    expect(counts.data).toEqual({ me: { totalUnreadCount: 1 }, chat: { unreadCount: 1, unreadMentionCount: 1 } });
    // The root (dave does not follow the thread) and the mention in it: each counts one unread message.
    await push.waitFor(device, 2);
    const byMessage = new Map(device.accepted.map((payload) => [payload.messageId, payload]));
    expect(byMessage.get(mention.id)).toMatchObject({ mention: true, unread: 1, badge: 1 });
    expect(byMessage.get(root.id)).toMatchObject({ unread: 1, badge: 1 });
  });
});
