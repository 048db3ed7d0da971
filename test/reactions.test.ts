import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { REACTIONS_MAX_DISTINCT } from '../src/messages/reactions.ts';
import { codeOf, createChat, gql, registerUser, sendText, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { BLOCK_USER, DELETE_MESSAGE, MESSAGE_EVENTS } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const REACTIONS = 'reactions { emoji count viewerReacted users(first: $first) { edges { node { id } } pageInfo { hasNextPage } } }';
const ADD = `mutation ($m: ID!, $e: String!, $first: Int) { addReaction(messageId: $m, emoji: $e) { id ${REACTIONS} } }`;
const REMOVE = `mutation ($m: ID!, $e: String!, $first: Int) { removeReaction(messageId: $m, emoji: $e) { id ${REACTIONS} } }`;
const PAGE = `query ($c: ID!, $n: Int, $first: Int) { chat(id: $c) { messages(last: $n) { edges { node { id ${REACTIONS} } } } } }`;

let app: App;
let url: string;
const queries: string[] = [];
const sockets = openConnections();
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let stranger: TestUser;
let group: string;

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp({}, { onQuery: (sql) => queries.push(sql) }));
  [alice, bob, carol, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Reactions', memberIds: [bob.id, carol.id] });
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const react = (user: TestUser, messageId: string, emoji: string, first = 10) =>
  gql(app, ADD, { m: messageId, e: emoji, first }, { token: user.accessToken });
const unreact = (user: TestUser, messageId: string, emoji: string) => gql(app, REMOVE, { m: messageId, e: emoji, first: 10 }, { token: user.accessToken });

describe('addReaction', () => {
  it.each(['👍', '👍🏽', '👩‍👩‍👧‍👦', '🧑🏿‍🤝‍🧑🏻', '🏳️‍🌈', '🇺🇦', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '1️⃣', '❤️', '🤷🏾‍♀️'])('accepts %s as one emoji', async (emoji) => {
    const message = await sendText(app, alice, group, `react with ${emoji}`);
    const result = await react(bob, message.id, emoji);
    expect(result.errors).toBeUndefined();
    expect(result.data.addReaction.reactions).toEqual([
      { emoji, count: 1, viewerReacted: true, users: { edges: [{ node: { id: bob.id } }], pageInfo: { hasNextPage: false } } },
    ]);
  });

  it.each(['ab', '😀😀', 'a', '1', '', ' 👍', '👍 ', '🇺', 'é', '\u200D', '👍\u200D'])('refuses %j', async (emoji) => {
    const message = await sendText(app, alice, group, 'no such emoji');
    const result = await react(bob, message.id, emoji);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('emoji');
    expect(await app.services.prisma.messageReaction.count({ where: { messageId: message.id } })).toBe(0);
  });

  it('groups by emoji, counts each user once, and a repeat is a no-op', async () => {
    const message = await sendText(app, alice, group, 'vote');
    await react(bob, message.id, '👍');
    await react(bob, message.id, '👍');
    await react(carol, message.id, '👍');
    const last = await react(carol, message.id, '🎉');
    expect(last.data.addReaction.reactions.map((g: any) => [g.emoji, g.count, g.viewerReacted])).toEqual([
      ['👍', 2, true],
      ['🎉', 1, true],
    ]);
    const asAlice = await gql(app, PAGE, { c: group, n: 1, first: 1 }, { token: alice.accessToken });
    const groups = asAlice.data.chat.messages.edges[0].node.reactions;
    expect(groups.map((g: any) => [g.emoji, g.count, g.viewerReacted])).toEqual([
      ['👍', 2, false],
      ['🎉', 1, false],
    ]);
    // first: 1 of two reactors: the earliest, and more to come.
    expect(groups[0].users).toEqual({ edges: [{ node: { id: bob.id } }], pageInfo: { hasNextPage: true } });
  });

  it(`allows at most ${REACTIONS_MAX_DISTINCT} different emoji on a message, but more people on the same ones`, async () => {
    const message = await sendText(app, alice, group, 'full');
    const emoji = [...'😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙🥲😚🙂'];
    expect(emoji).toHaveLength(REACTIONS_MAX_DISTINCT);
    // Concurrently, so only the lock keeps the 21st out.
    const results = await Promise.all([...emoji, '🤔', '🤨'].map((e, i) => react(i % 2 ? bob : carol, message.id, e)));
    const refused = results.filter((r) => codeOf(r) === 'BAD_USER_INPUT');
    expect(refused).toHaveLength(2);
    const distinct = await app.services.prisma.messageReaction.groupBy({ by: ['emoji'], where: { messageId: message.id } });
    expect(distinct).toHaveLength(REACTIONS_MAX_DISTINCT);
    const taken = distinct[0]!.emoji;
    expect((await react(alice, message.id, taken)).errors).toBeUndefined();
    expect(codeOf(await react(alice, message.id, emoji.find((e) => !distinct.some((d) => d.emoji === e)) ?? '🤯'))).toBe('BAD_USER_INPUT');
  });

  it('counts 50 concurrent reactors exactly', async () => {
    const reactors = await Promise.all(Array.from({ length: 50 }, () => registerUser(app)));
    const crowd = await createChat(app, alice, { kind: 'GROUP', title: 'Crowd', memberIds: reactors.map((u) => u.id) });
    const message = await sendText(app, alice, crowd, 'react, everyone');
    const results = await Promise.all(reactors.flatMap((user) => [react(user, message.id, '🔥'), react(user, message.id, '🔥')]));
    expect(results.filter((r) => r.errors)).toEqual([]);
    const page = await gql(app, PAGE, { c: crowd, n: 1, first: 50 }, { token: alice.accessToken });
    const [fire] = page.data.chat.messages.edges[0].node.reactions;
    expect(fire.count).toBe(50);
    expect(new Set(fire.users.edges.map((e: any) => e.node.id))).toEqual(new Set(reactors.map((u) => u.id)));
  });

  it('is NOT_FOUND outside the chat, BAD_USER_INPUT on a deleted message, FORBIDDEN across a block', async () => {
    const message = await sendText(app, alice, group, 'members only');
    expect(codeOf(await react(stranger, message.id, '👍'))).toBe('NOT_FOUND');
    expect(codeOf(await react(stranger, 'no-such-message', '👍'))).toBe('NOT_FOUND');

    await react(bob, message.id, '👍');
    await gql(app, DELETE_MESSAGE, { id: message.id }, { token: alice.accessToken });
    expect(codeOf(await react(carol, message.id, '👍'))).toBe('BAD_USER_INPUT');
    // Deleting erased its reactions with its content.
    expect(await app.services.prisma.messageReaction.count({ where: { messageId: message.id } })).toBe(0);

    const [dave, erin] = await Promise.all([registerUser(app), registerUser(app)]);
    const direct = await createChat(app, dave, { kind: 'DIRECT', memberIds: [erin.id] });
    const said = await sendText(app, dave, direct, 'hi');
    await gql(app, BLOCK_USER, { userId: dave.id }, { token: erin.accessToken });
    expect(codeOf(await react(erin, said.id, '👍'))).toBe('FORBIDDEN');
    expect(codeOf(await react(dave, said.id, '👍'))).toBe('FORBIDDEN');
  });

  it('reads the reactions of a page of messages in a constant number of queries', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Page', memberIds: [bob.id, carol.id] });
    for (let i = 0; i < 12; i++) {
      const message = await sendText(app, alice, chat, `m${i}`);
      await react(bob, message.id, '👍');
      await react(carol, message.id, i % 2 ? '👍' : '👀');
    }
    const reactionQueries = async (n: number) => {
      queries.length = 0;
      const result = await gql(app, PAGE, { c: chat, n, first: 2 }, { token: alice.accessToken });
      expect(result.errors).toBeUndefined();
      expect(result.data.chat.messages.edges).toHaveLength(n);
      return queries.filter((sql) => sql.includes('MessageReaction') || sql.includes('"User"')).length;
    };
    const few = await reactionQueries(2);
    expect(few).toBeGreaterThan(0);
    expect(await reactionQueries(12)).toBe(few);
  });
});

describe('removeReaction', () => {
  it("takes off only the viewer's own, and removing again is a no-op", async () => {
    const message = await sendText(app, alice, group, 'undo');
    await react(bob, message.id, '👍');
    await react(carol, message.id, '👍');
    const removed = await unreact(bob, message.id, '👍');
    expect(removed.data.removeReaction.reactions.map((g: any) => [g.emoji, g.count, g.viewerReacted])).toEqual([['👍', 1, false]]);
    expect((await unreact(bob, message.id, '👍')).errors).toBeUndefined();
    const last = await unreact(carol, message.id, '👍');
    expect(last.data.removeReaction.reactions).toEqual([]);
    expect(codeOf(await unreact(bob, message.id, 'ab'))).toBe('BAD_USER_INPUT');
    expect(codeOf(await unreact(stranger, message.id, '👍'))).toBe('NOT_FOUND');
  });
});

describe('REACTIONS_CHANGED', () => {
  it('reaches the members live on messageEvents, once per change', async () => {
    const message = await sendText(app, alice, group, 'live');
    const connection = sockets.connect(url, alice.accessToken);
    const events = subscribe(connection, MESSAGE_EVENTS.replace('message { id', 'message { reactions { emoji count } id'), { chatId: group });
    await settle();
    await react(bob, message.id, '🎉');
    await react(bob, message.id, '🎉'); // a no-op tells nobody
    await unreact(bob, message.id, '🎉');
    const added = await events.next();
    expect(added.data?.messageEvents).toMatchObject({ type: 'REACTIONS_CHANGED', chatId: group, seq: message.seq, message: { id: message.id } });
    const removed = await events.next();
    expect(removed.data?.messageEvents).toMatchObject({ type: 'REACTIONS_CHANGED', message: { id: message.id, reactions: [] } });
    expect(await events.nothingWithin(300)).toBe(true);
  });
});

describe('reactions across a block', () => {
  it('hides the reactions of users the viewer blocked or who blocked the viewer, in reads and in live events', async () => {
    const [viewer, friend, blockedByViewer, blockerOfViewer] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    const chat = await createChat(app, viewer, { kind: 'GROUP', title: 'Blocks', memberIds: [friend.id, blockedByViewer.id, blockerOfViewer.id] });
    await gql(app, BLOCK_USER, { userId: blockedByViewer.id }, { token: viewer.accessToken });
    await gql(app, BLOCK_USER, { userId: viewer.id }, { token: blockerOfViewer.accessToken });
    const message = await sendText(app, friend, chat, 'react');
    await react(friend, message.id, '👍');
    await react(blockedByViewer, message.id, '👍');
    await react(blockerOfViewer, message.id, '👍');
    await react(viewer, message.id, '👍');
    await react(blockedByViewer, message.id, '🙈');
    await react(blockerOfViewer, message.id, '🙉');

    const seenBy = async (user: TestUser) => {
      const result = await gql(app, PAGE, { c: chat, n: 1, first: 10 }, { token: user.accessToken });
      return result.data.chat.messages.edges[0].node.reactions.map((g: any) => [g.emoji, g.count, g.viewerReacted, g.users.edges.map((e: any) => e.node.id)]);
    };
    expect(await seenBy(viewer)).toEqual([['👍', 2, true, [friend.id, viewer.id]]]);
    expect(await seenBy(friend)).toEqual([
      ['👍', 4, true, [friend.id, blockedByViewer.id, blockerOfViewer.id, viewer.id]],
      ['🙈', 1, false, [blockedByViewer.id]],
      ['🙉', 1, false, [blockerOfViewer.id]],
    ]);

    // The same event reaches both, each with what they may see.
    const live = MESSAGE_EVENTS.replace('message { id', 'message { reactions { emoji count } id');
    const viewerEvents = subscribe(sockets.connect(url, viewer.accessToken), live, { chatId: chat });
    const friendEvents = subscribe(sockets.connect(url, friend.accessToken), live, { chatId: chat });
    await settle();
    await react(blockerOfViewer, message.id, '🎉');
    expect((await viewerEvents.next()).data?.messageEvents.message.reactions).toEqual([{ emoji: '👍', count: 2 }]);
    expect((await friendEvents.next()).data?.messageEvents.message.reactions.map((g: any) => g.emoji)).toEqual(['👍', '🙈', '🙉', '🎉']);
  });
});
