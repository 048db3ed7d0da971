import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { findDownloadableAttachment } from '../src/files/access.ts';
import { PINS_MAX } from '../src/messages/pins.ts';
import { codeOf, createChat, gql, registerUser, sendText, startSocketTestApp, uniqueName, type TestUser } from './support/helpers.ts';
import { BLOCK_USER, CHAT_EVENTS, CREATE_CHAT, DELETE_MESSAGE, MESSAGE_EVENTS, SET_CHAT_MEMBER_ROLE } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const PIN = `mutation ($m: ID!) { pinMessage(messageId: $m) { id pinned } }`;
const UNPIN = `mutation ($m: ID!) { unpinMessage(messageId: $m) { id pinned } }`;
const PINNED = `query ($c: ID!, $first: Int) { chat(id: $c) { pinnedMessages(first: $first) { edges { node { id seq } } pageInfo { hasNextPage } } } }`;
const PIN_EVENTS = `subscription { chatEvents { type chatId actor { id } message { id pinned } } }`;
const FORWARD = `mutation ($m: ID!, $c: ID!) { forwardMessage(messageId: $m, toChatId: $c) {
  id seq kind text location { latitude longitude } attachment { id } chat { id } sender { id } forwardedFrom { sender { id } sentAt } } }`;
const SEND = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id createdAt } }`;

let app: App;
let url: string;
let group: string;
let [alice, bob, carol, stranger] = [] as unknown as [TestUser, TestUser, TestUser, TestUser];
const sockets = openConnections();

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp());
  [alice, bob, carol, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Pins', memberIds: [bob.id, carol.id] });
  await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: group, userId: bob.id, role: 'ADMIN' }, { token: alice.accessToken });
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const pin = (user: TestUser, messageId: string) => gql(app, PIN, { m: messageId }, { token: user.accessToken });
const unpin = (user: TestUser, messageId: string) => gql(app, UNPIN, { m: messageId }, { token: user.accessToken });
const pinnedIds = async (user: TestUser, chatId: string, first = 50) =>
  (await gql(app, PINNED, { c: chatId, first }, { token: user.accessToken })).data.chat.pinnedMessages.edges.map((e: any) => e.node.id);

describe('pins', () => {
  it('lets group owners and admins pin and unpin, not plain members or strangers', async () => {
    const [one, two] = [await sendText(app, carol, group, 'one'), await sendText(app, carol, group, 'two')];
    expect((await pin(alice, one.id)).data.pinMessage).toEqual({ id: one.id, pinned: true });
    expect((await pin(bob, two.id)).data.pinMessage.pinned).toBe(true);
    expect(codeOf(await pin(carol, one.id))).toBe('FORBIDDEN');
    expect(codeOf(await unpin(carol, one.id))).toBe('FORBIDDEN');
    expect(codeOf(await pin(stranger, one.id))).toBe('NOT_FOUND');
    expect(await pinnedIds(carol, group)).toEqual([two.id, one.id]);
    expect((await unpin(bob, one.id)).data.unpinMessage.pinned).toBe(false);
    expect((await unpin(bob, one.id)).errors).toBeUndefined();
    expect(await pinnedIds(carol, group)).toEqual([two.id]);
    await unpin(alice, two.id);
  });

  it('lets either member of a direct chat pin, until a block stands between them', async () => {
    const direct = await createChat(app, carol, { kind: 'DIRECT', memberIds: [stranger.id] });
    const said = await sendText(app, carol, direct, 'remember this');
    expect((await pin(stranger, said.id)).data.pinMessage.pinned).toBe(true);
    expect((await unpin(carol, said.id)).data.unpinMessage.pinned).toBe(false);
    await gql(app, BLOCK_USER, { userId: carol.id }, { token: stranger.accessToken });
    expect(codeOf(await pin(carol, said.id))).toBe('FORBIDDEN');
  });

  it(`keeps at most ${PINS_MAX} pins per chat, even when pinned concurrently`, async () => {
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Many pins', memberIds: [] });
    const messages = [];
    for (let i = 0; i < PINS_MAX + 2; i++) messages.push(await sendText(app, alice, chatId, `pin me ${i}`));
    const results = await Promise.all(messages.map((m) => pin(alice, m.id)));
    expect(results.filter((r) => codeOf(r) === 'BAD_USER_INPUT')).toHaveLength(2);
    expect(await app.services.prisma.messagePin.count({ where: { chatId } })).toBe(PINS_MAX);
    // Already pinned is no refusal, even at the limit.
    const pinned = await app.services.prisma.messagePin.findFirstOrThrow({ where: { chatId } });
    expect((await pin(alice, pinned.messageId)).errors).toBeUndefined();
    const page = await gql(app, PINNED, { c: chatId, first: 10 }, { token: alice.accessToken });
    const seqs = page.data.chat.pinnedMessages.edges.map((e: any) => e.node.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(page.data.chat.pinnedMessages.pageInfo.hasNextPage).toBe(true);
  });

  it('tells members MESSAGE_PINNED and MESSAGE_UNPINNED live, and a deleted message is unpinned', async () => {
    const message = await sendText(app, carol, group, 'pin and tell');
    const events = subscribe(sockets.connect(url, carol.accessToken), PIN_EVENTS);
    await settle();
    await pin(alice, message.id);
    await pin(alice, message.id); // a repeat tells nobody
    await unpin(bob, message.id);
    expect((await events.next()).data?.chatEvents).toEqual({ type: 'MESSAGE_PINNED', chatId: group, actor: { id: alice.id }, message: { id: message.id, pinned: expect.any(Boolean) } });
    expect((await events.next()).data?.chatEvents).toMatchObject({ type: 'MESSAGE_UNPINNED', actor: { id: bob.id }, message: { id: message.id } });
    expect(await events.nothingWithin(300)).toBe(true);

    await pin(alice, message.id);
    await gql(app, DELETE_MESSAGE, { id: message.id }, { token: carol.accessToken });
    expect(await pinnedIds(alice, group)).not.toContain(message.id);
    expect(codeOf(await pin(alice, message.id))).toBe('BAD_USER_INPUT');
  });
});

describe('forwardMessage', () => {
  const forward = (user: TestUser, messageId: string, chatId: string) => gql(app, FORWARD, { m: messageId, c: chatId }, { token: user.accessToken });

  it('copies text into another chat with forwardedFrom, and a forward of a forward names the first sender', async () => {
    const target = await createChat(app, bob, { kind: 'GROUP', title: 'Elsewhere', memberIds: [stranger.id] });
    const sent = await gql(app, SEND, { input: { chatId: group, kind: 'TEXT', text: 'worth sharing' } }, { token: carol.accessToken });
    const original = sent.data.sendMessage;
    const events = subscribe(sockets.connect(url, stranger.accessToken), MESSAGE_EVENTS, { chatId: target });
    await settle();
    const copy = (await forward(bob, original.id, target)).data.forwardMessage;
    expect(copy).toMatchObject({ kind: 'TEXT', text: 'worth sharing', chat: { id: target }, sender: { id: bob.id }, forwardedFrom: { sender: { id: carol.id }, sentAt: original.createdAt } });
    expect((await events.next()).data?.messageEvents).toMatchObject({ type: 'CREATED', seq: copy.seq, message: { id: copy.id, text: 'worth sharing' } });

    const again = (await forward(stranger, copy.id, await createChat(app, stranger, { kind: 'DIRECT', memberIds: [alice.id] }))).data.forwardMessage;
    expect(again.forwardedFrom).toEqual({ sender: { id: carol.id }, sentAt: original.createdAt });
    // The origin is a sender and a time: nothing names the source chat.
    const type = await gql(app, `{ __type(name: "ForwardedFrom") { fields { name } } }`);
    expect(type.data.__type.fields.map((f: any) => f.name).sort()).toEqual(['sender', 'sentAt']);
  });

  it("keeps a location, and makes an attachment readable by the target chat's members", async () => {
    const target = await createChat(app, alice, { kind: 'DIRECT', memberIds: [stranger.id] });
    const located = await gql(app, SEND, { input: { chatId: group, kind: 'LOCATION', location: { latitude: 1.5, longitude: -2.25 } } }, { token: bob.accessToken });
    const copy = (await forward(alice, located.data.sendMessage.id, target)).data.forwardMessage;
    expect(copy).toMatchObject({ kind: 'LOCATION', text: null, location: { latitude: 1.5, longitude: -2.25 } });

    const attachment = await app.services.prisma.attachment.create({
      data: { uploaderId: carol.id, kind: 'IMAGE', name: 'photo.png', mimeType: 'image/png', size: 3, storageKey: uniqueName('blob') },
    });
    const image = await gql(app, SEND, { input: { chatId: group, kind: 'IMAGE', attachmentId: attachment.id, text: 'look' } }, { token: carol.accessToken });
    expect(await findDownloadableAttachment(app.services.prisma, attachment.id, stranger.id)).toBeNull();
    const forwarded = (await forward(alice, image.data.sendMessage.id, target)).data.forwardMessage;
    expect(forwarded).toMatchObject({ kind: 'IMAGE', text: 'look', attachment: { id: attachment.id } });
    expect(await findDownloadableAttachment(app.services.prisma, attachment.id, stranger.id)).toMatchObject({ id: attachment.id });
  });

  it('refuses what the viewer cannot read or write, deleted and call messages, and end-to-end encrypted chats', async () => {
    const message = await sendText(app, carol, group, 'source');
    const mine = await createChat(app, stranger, { kind: 'GROUP', title: 'Mine', memberIds: [] });
    expect(codeOf(await forward(stranger, message.id, mine))).toBe('NOT_FOUND');
    const notMine = await createChat(app, stranger, { kind: 'GROUP', title: 'Not yours', memberIds: [] });
    expect(codeOf(await forward(alice, message.id, notMine))).toBe('NOT_FOUND');

    const [dave, erin] = await Promise.all([registerUser(app), registerUser(app)]);
    await gql(app, `mutation ($c: ID!, $u: [ID!]!) { addChatMembers(chatId: $c, userIds: $u) { id } }`, { c: group, u: [dave.id] }, { token: alice.accessToken });
    const direct = await createChat(app, dave, { kind: 'DIRECT', memberIds: [erin.id] });
    await gql(app, BLOCK_USER, { userId: dave.id }, { token: erin.accessToken });
    expect(codeOf(await forward(dave, message.id, direct))).toBe('FORBIDDEN');

    const sealed = await gql(app, CREATE_CHAT, { input: { kind: 'GROUP', title: 'Sealed', memberIds: [carol.id], encrypted: true } }, { token: alice.accessToken });
    const sealedId = sealed.data.createChat.id;
    const intoSealed = await forward(alice, message.id, sealedId);
    expect(codeOf(intoSealed)).toBe('BAD_USER_INPUT');
    expect(intoSealed.errors?.[0]?.extensions?.field).toBe('toChatId');
    const row = await app.services.prisma.message.create({ data: { id: uniqueName('m'), chatId: sealedId, seq: 1, senderId: alice.id, kind: 'TEXT' } });
    expect(codeOf(await forward(alice, row.id, group))).toBe('BAD_USER_INPUT');

    const gone = await sendText(app, carol, group, 'soon gone');
    await gql(app, DELETE_MESSAGE, { id: gone.id }, { token: carol.accessToken });
    expect(codeOf(await forward(alice, gone.id, group))).toBe('BAD_USER_INPUT');
    const call = await app.services.prisma.message.create({
      data: { id: uniqueName('m'), chatId: group, seq: 1_000_000, senderId: alice.id, kind: 'CALL', content: Buffer.from('x'), contentKeyId: 'k' },
    });
    expect(codeOf(await forward(alice, call.id, group))).toBe('BAD_USER_INPUT');
  });
});
