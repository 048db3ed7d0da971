import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { READ_RECEIPTS_MAX_MEMBERS } from '../src/loaders.ts';
import { createChat, gql, registerUser, sendText, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { LEAVE_CHAT, LOGIN } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const MARK_READ = `mutation ($c: ID!, $m: ID!) { markRead(chatId: $c, messageId: $m) { unreadCount } }`;
const READ_STATE = `subscription { readStateEvents { type chatId lastReadSeq unreadCount totalUnreadCount } }`;
const READ_BY = `subscription ($chatId: ID) { messageEvents(chatId: $chatId) { type chatId seq reader { id } message { id readBy { id } } } }`;
const UNREAD = `query ($c: ID!) { me { totalUnreadCount } chat(id: $c) { unreadCount } }`;

let app: App;
let url: string;
const sockets = openConnections();
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp());
  [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const markRead = (user: TestUser | string, chatId: string, messageId: string) =>
  gql(app, MARK_READ, { c: chatId, m: messageId }, { token: typeof user === 'string' ? user : user.accessToken });

/** A second device session of `user`. */
async function secondDevice(user: TestUser): Promise<string> {
  const login = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
  return login.data.login.accessToken;
}

describe('readStateEvents', () => {
  it("moves the read position on every one of the user's devices, live, with the chat's and the total unread counts", async () => {
    const chatId = await createChat(app, bob, { kind: 'GROUP', title: 'Devices', memberIds: [alice.id, carol.id] });
    const other = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    const sent = [];
    for (let i = 0; i < 4; i++) sent.push(await sendText(app, bob, chatId, `m${i}`));
    await sendText(app, bob, other, 'elsewhere');

    const phone = await secondDevice(alice);
    const laptop = subscribe(sockets.connect(url, alice.accessToken), READ_STATE);
    const tablet = subscribe(sockets.connect(url, phone), READ_STATE);
    const bobs = subscribe(sockets.connect(url, bob.accessToken), READ_STATE);
    await settle();

    expect((await markRead(phone, chatId, sent[1]!.id)).errors).toBeUndefined();
    const expected = { type: 'READ', chatId, lastReadSeq: sent[1]!.seq, unreadCount: 2, totalUnreadCount: 3 };
    expect((await laptop.next()).data?.readStateEvents).toEqual(expected);
    expect((await tablet.next()).data?.readStateEvents).toEqual(expected);

    // Backwards, or to where it already is, moves nothing and tells nobody.
    await markRead(alice, chatId, sent[0]!.id);
    await markRead(alice, chatId, sent[1]!.id);
    expect(await laptop.nothingWithin(300)).toBe(true);
    expect(await bobs.nothingWithin(0)).toBe(true);

    await markRead(alice, chatId, sent[3]!.id);
    expect((await tablet.next()).data?.readStateEvents).toEqual({ ...expected, lastReadSeq: sent[3]!.seq, unreadCount: 0, totalUnreadCount: 1 });
  });

  it('says nothing about a chat the user has left', async () => {
    const chatId = await createChat(app, bob, { kind: 'GROUP', title: 'Leaving', memberIds: [alice.id] });
    const sent = await sendText(app, bob, chatId, 'bye');
    const events = subscribe(sockets.connect(url, alice.accessToken), READ_STATE);
    await settle();
    // Published as markRead would, after alice left: delivery checks membership then.
    await gql(app, LEAVE_CHAT, { chatId }, { token: alice.accessToken });
    await app.services.events.readState(alice.id, { chatId, lastReadSeq: sent.seq });
    expect(await events.nothingWithin(300)).toBe(true);
  });
});

describe('READ_BY_CHANGED', () => {
  it('tells the other members live who read how far', async () => {
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Seen by', memberIds: [bob.id, carol.id] });
    const sent = await sendText(app, alice, chatId, 'did you see this?');
    const events = subscribe(sockets.connect(url, alice.accessToken), READ_BY, { chatId });
    await settle();
    await markRead(bob, chatId, sent.id);
    const event = (await events.next()).data?.messageEvents;
    expect(event).toEqual({ type: 'READ_BY_CHANGED', chatId, seq: sent.seq, reader: { id: bob.id }, message: { id: sent.id, readBy: [{ id: bob.id }] } });
    await markRead(bob, chatId, sent.id);
    expect(await events.nothingWithin(300)).toBe(true);
  });

  it(`is not published in chats over ${READ_RECEIPTS_MAX_MEMBERS} members`, async () => {
    const crowd = await Promise.all(Array.from({ length: READ_RECEIPTS_MAX_MEMBERS }, () => registerUser(app)));
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Crowd', memberIds: crowd.map((u) => u.id) });
    const sent = await sendText(app, alice, chatId, 'too many to list');
    const events = subscribe(sockets.connect(url, alice.accessToken), READ_BY, { chatId });
    await settle();
    await markRead(crowd[0]!, chatId, sent.id);
    await sendText(app, alice, chatId, 'after');
    expect((await events.next()).data?.messageEvents).toMatchObject({ type: 'CREATED', reader: null });
  });
});

describe('unread counts', () => {
  it('stay exact under concurrent sends and reads, and me.totalUnreadCount sums them', async () => {
    const [dave, erin] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, erin, { kind: 'GROUP', title: 'Busy', memberIds: [dave.id] });
    const other = await createChat(app, erin, { kind: 'DIRECT', memberIds: [dave.id] });
    await sendText(app, erin, other, 'one elsewhere');
    const first = await sendText(app, erin, chatId, 'first');
    const marks: number[] = [first.seq];
    await Promise.all([
      ...Array.from({ length: 30 }, (_, i) => sendText(app, erin, chatId, `busy ${i}`)),
      // Thread replies take positions in between but are not counted.
      ...Array.from({ length: 10 }, (_, i) => sendText(app, erin, chatId, `in the thread ${i}`, { threadRootId: first.id })),
      ...Array.from({ length: 10 }, async (_, i) => {
        const sent = await sendText(app, erin, chatId, `mark ${i}`);
        await markRead(dave, chatId, sent.id);
        marks.push(sent.seq);
      }),
      sendText(app, dave, chatId, 'my own never counts'),
    ]);
    // Past every read position for sure.
    for (let i = 0; i < 3; i++) await sendText(app, erin, chatId, `later in the thread ${i}`, { threadRootId: first.id });
    const member = await app.services.prisma.chatMember.findUniqueOrThrow({ where: { chatId_userId: { chatId, userId: dave.id } } });
    expect(member.lastReadSeq).toBe(Math.max(...marks));
    const unreadInDb = await app.services.prisma.message.count({ where: { chatId, senderId: erin.id, threadRootId: null, seq: { gt: member.lastReadSeq } } });

    const result = await gql(app, UNREAD, { c: chatId }, { token: dave.accessToken });
    expect(result.data.chat.unreadCount).toBe(unreadInDb);
    expect(result.data.me.totalUnreadCount).toBe(unreadInDb + 1);
    const someoneElse = await gql(app, `query ($u: ID!) { user(id: $u) { totalUnreadCount } }`, { u: erin.id }, { token: dave.accessToken });
    expect(someoneElse.data.user.totalUnreadCount).toBeNull();
  });
});
