// graphql-ws subscriptions over a real port, with real clients.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, TEST_JWT_SECRET, type TestUser } from './support/helpers.ts';
import {
  ADD_CHAT_MEMBERS,
  CHAT_EVENTS,
  DELETE_MESSAGE,
  LEAVE_CHAT,
  LOGOUT,
  MESSAGE_EVENTS,
  PRESENCE,
  REMOVE_CHAT_MEMBER,
  SET_STATUS,
  START_TYPING,
  TYPING,
  UPDATE_CHAT,
} from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

let app: App;
let url: string;
const queries: string[] = [];
const sockets = openConnections();
const prefix = `kocmoc-test:${randomUUID()}:`;

beforeAll(async () => {
  // Push notifications are tested in push.test.ts; off here, their jobs would add to the query counts.
  app = await startTestApp(
    { TYPING_TTL: '400ms', PUSH_ENABLED: 'false' },
    {
      presence: { offlineGraceMs: 150, keyPrefix: prefix },
      channelPrefix: prefix,
      webSocket: { maxOperationsPerConnection: 3 },
      onQuery: (sql) => queries.push(sql),
    },
  );
  url = (await app.start()).url;
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const ws = (token: string | null, params?: Record<string, unknown>) => sockets.connect(url, token, params);

const edit = (user: TestUser, id: string, text: string) =>
  gql(app, `mutation ($id: ID!, $t: String!) { editMessage(id: $id, text: $t) { id } }`, { id, t: text }, { token: user.accessToken });
const remove = (user: TestUser, id: string) => gql(app, DELETE_MESSAGE, { id }, { token: user.accessToken });

describe('authentication', () => {
  it('closes with 4401 for a missing, malformed or forged token', async () => {
    expect(await ws(null).closed).toBe(4401);
    expect(await ws('garbage').closed).toBe(4401);
    const forged = await new SignJWT({ sid: 'x' }).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setExpirationTime('5m').sign(new TextEncoder().encode('y'.repeat(40)));
    expect(await ws(forged).closed).toBe(4401);
  });

  it('accepts the token in connection_init, and closes the socket when its session logs out', async () => {
    const user = await registerUser(app);
    const connection = ws(user.accessToken);
    await connection.connected;
    await gql(app, LOGOUT, {}, { token: user.accessToken });
    expect(await connection.closed).toBe(4401);
  });

  it('refuses new subscriptions once the access token expired, keeping the connection', async () => {
    const user = await registerUser(app);
    const session = await app.services.prisma.session.findFirstOrThrow({ where: { userId: user.id } });
    const shortLived = await new SignJWT({ sid: session.id })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuer('kocmoc')
      .setAudience('kocmoc-api')
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 1)
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    const connection = ws(shortLived);
    await connection.connected;
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    const late = subscribe(connection, CHAT_EVENTS);
    const result = await late.next();
    expect(result.errors?.[0]?.extensions?.code ?? result.errors?.[0]?.message).toMatch(/UNAUTHENTICATED|expired/);
  });

  it('bounds operations per connection', async () => {
    const user = await registerUser(app);
    const connection = ws(user.accessToken);
    const subs = [1, 2, 3].map(() => subscribe(connection, CHAT_EVENTS));
    await settle();
    const fourth = subscribe(connection, CHAT_EVENTS);
    const result = await fourth.next();
    expect(result.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    subs.forEach((s) => s.unsubscribe());
  });
});

describe('messageEvents', () => {
  it('delivers CREATED, EDITED and DELETED in order to both members', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const aliceSub = subscribe(ws(alice.accessToken), MESSAGE_EVENTS, { chatId });
    const bobSub = subscribe(ws(bob.accessToken), MESSAGE_EVENTS, {});
    await settle();

    const first = await sendText(app, alice, chatId, 'hello bob');
    const second = await sendText(app, bob, chatId, 'hi alice');
    await edit(alice, first.id, 'hello, bob');
    await remove(bob, second.id);

    for (const sub of [aliceSub, bobSub]) {
      const events = [await sub.next(), await sub.next(), await sub.next(), await sub.next()].map((r) => r.data.messageEvents);
      expect(events.map((e) => [e.type, e.message.id])).toEqual([
        ['CREATED', first.id],
        ['CREATED', second.id],
        ['EDITED', first.id],
        ['DELETED', second.id],
      ]);
      expect(events[0].message.text).toBe('hello bob');
      expect(events[2].message.text).toBe('hello, bob');
      expect(events[3].message.text).toBeNull();
      expect(events.map((e) => e.seq)).toEqual([first.seq, second.seq, first.seq, second.seq]);
    }
  });

  it('gives non-members nothing: NOT_FOUND for a named chat, silence for all-chats', async () => {
    const [alice, bob, eve] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Private', memberIds: [bob.id] });
    const eveConnection = ws(eve.accessToken);
    const named = subscribe(eveConnection, MESSAGE_EVENTS, { chatId });
    const all = subscribe(eveConnection, MESSAGE_EVENTS, {});
    expect((await named.next()).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    await settle();
    await sendText(app, alice, chatId, 'not for eve');
    expect(await all.nothingWithin(300)).toBe(true);
  });

  it('follows chats joined after subscribing and stops at leaving', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Later', memberIds: [] });
    const bobSub = subscribe(ws(bob.accessToken), MESSAGE_EVENTS, {});
    await settle();
    await sendText(app, alice, chatId, 'before bob');
    await gql(app, ADD_CHAT_MEMBERS, { chatId, userIds: [bob.id] }, { token: alice.accessToken });
    await settle();
    const welcome = await sendText(app, alice, chatId, 'welcome bob');
    expect((await bobSub.next()).data.messageEvents.message.id).toBe(welcome.id);

    await gql(app, LEAVE_CHAT, { chatId }, { token: bob.accessToken });
    await settle();
    await sendText(app, alice, chatId, 'after bob left');
    expect(await bobSub.nothingWithin(300)).toBe(true);
  });

  it('stops delivering to a member removed while subscribed to that chat', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Kick', memberIds: [bob.id] });
    const bobSub = subscribe(ws(bob.accessToken), MESSAGE_EVENTS, { chatId });
    await settle();
    await gql(app, REMOVE_CHAT_MEMBER, { chatId, userId: bob.id }, { token: alice.accessToken });
    await sendText(app, alice, chatId, 'bob is gone');
    expect(await bobSub.nothingWithin(300)).toBe(true);
  });

  it('catches up exactly what was missed across a reconnect (sinceSeq), then continues live', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const firstConnection = ws(bob.accessToken);
    const before = subscribe(firstConnection, MESSAGE_EVENTS, { chatId });
    await settle();
    const seen = await sendText(app, alice, chatId, 'seen');
    const lastSeq = (await before.next()).data.messageEvents.seq;
    expect(lastSeq).toBe(seen.seq);
    await firstConnection.dispose();

    const missed = [await sendText(app, alice, chatId, 'missed 1'), await sendText(app, alice, chatId, 'missed 2')];
    const after = subscribe(ws(bob.accessToken), MESSAGE_EVENTS, { chatId, sinceSeq: lastSeq });
    const replayed = [await after.next(), await after.next()].map((r) => r.data.messageEvents);
    expect(replayed.map((e) => [e.type, e.message.id])).toEqual(missed.map((m) => ['CREATED', m.id]));
    const live = await sendText(app, alice, chatId, 'live again');
    expect((await after.next()).data.messageEvents.message.id).toBe(live.id);
    expect(await after.nothingWithin(200)).toBe(true);
  });

  it('delivers concurrent sends to every subscriber exactly once, in position order', async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => registerUser(app)));
    const chatId = await createChat(app, users[0]!, { kind: 'GROUP', title: 'Burst', memberIds: users.slice(1).map((u) => u.id) });
    const subs = users.map((u) => subscribe(ws(u.accessToken), MESSAGE_EVENTS, { chatId }));
    await settle();
    await Promise.all(users.flatMap((u) => [1, 2, 3, 4, 5].map((n) => sendText(app, u, chatId, `${u.username}-${n}`))));
    for (const sub of subs) {
      const seqs: number[] = [];
      for (let i = 0; i < 20; i++) seqs.push((await sub.next()).data.messageEvents.seq);
      expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(await sub.nothingWithin(100)).toBe(true);
    }
  });

  it('shows each subscriber their own view of viewer-dependent fields', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Roles', memberIds: [bob.id] });
    const query = `subscription ($chatId: ID) { messageEvents(chatId: $chatId) { message { chat { myRole } sender { email } } } }`;
    const [aliceSub, bobSub] = [subscribe(ws(alice.accessToken), query, { chatId }), subscribe(ws(bob.accessToken), query, { chatId })];
    await settle();
    await sendText(app, alice, chatId, 'whose role?');
    expect((await aliceSub.next()).data.messageEvents.message).toEqual({ chat: { myRole: 'OWNER' }, sender: { email: alice.email } });
    expect((await bobSub.next()).data.messageEvents.message).toEqual({ chat: { myRole: 'MEMBER' }, sender: { email: null } });
  });

  it('executes an event once per distinct operation, not once per subscriber', async () => {
    const query = `subscription ($chatId: ID) { messageEvents(chatId: $chatId) { type message { id text sender { id username } replyTo { id } } } }`;
    const queriesPerEvent = async (subscribers: number) => {
      const users = await Promise.all(Array.from({ length: subscribers }, () => registerUser(app)));
      const chatId = await createChat(app, users[0]!, { kind: 'GROUP', title: 'Fan-out', memberIds: users.slice(1).map((u) => u.id) });
      const subs = users.map((u) => subscribe(ws(u.accessToken), query, { chatId }));
      // Subscriptions finish setting up in the background: wait until the database goes quiet.
      for (let before = -1; before !== queries.length; ) {
        before = queries.length;
        await settle(200);
      }
      queries.length = 0;
      await sendText(app, users[0]!, chatId, 'to everyone');
      for (const sub of subs) expect((await sub.next()).data.messageEvents.message.text).toBe('to everyone');
      // The maintenance-mode check refreshes its cached row on a timer, whatever the subscribers.
      return queries.filter((sql) => !sql.includes('"Maintenance"')).length;
    };
    const few = await queriesPerEvent(2);
    const many = await queriesPerEvent(12);
    expect(many).toBe(few);
  });

  it('refuses sinceSeq without chatId', async () => {
    const user = await registerUser(app);
    const sub = subscribe(ws(user.accessToken), MESSAGE_EVENTS, { sinceSeq: 3 });
    expect((await sub.next()).errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('chatEvents', () => {
  it('tells members about joins, renames and removals, and the added user about their chat', async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const aliceSub = subscribe(ws(alice.accessToken), CHAT_EVENTS);
    const carolSub = subscribe(ws(carol.accessToken), CHAT_EVENTS);
    await settle();
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Events', memberIds: [bob.id] });
    expect((await aliceSub.next()).data.chatEvents).toMatchObject({ type: 'CREATED', chatId, actor: { id: alice.id } });
    await settle();

    await gql(app, ADD_CHAT_MEMBERS, { chatId, userIds: [carol.id] }, { token: alice.accessToken });
    expect((await aliceSub.next()).data.chatEvents).toMatchObject({ type: 'MEMBER_ADDED', user: { id: carol.id } });
    expect((await carolSub.next()).data.chatEvents).toMatchObject({ type: 'MEMBER_ADDED', chat: { id: chatId, title: 'Events' } });
    await settle();

    await gql(app, UPDATE_CHAT, { chatId, input: { title: 'Renamed' } }, { token: alice.accessToken });
    expect((await aliceSub.next()).data.chatEvents).toMatchObject({ type: 'UPDATED', chat: { title: 'Renamed' } });
    expect((await carolSub.next()).data.chatEvents).toMatchObject({ type: 'UPDATED', chat: { title: 'Renamed' } });

    await gql(app, REMOVE_CHAT_MEMBER, { chatId, userId: carol.id }, { token: alice.accessToken });
    expect((await aliceSub.next()).data.chatEvents).toMatchObject({ type: 'MEMBER_REMOVED', user: { id: carol.id } });
    expect((await carolSub.next()).data.chatEvents).toMatchObject({ type: 'MEMBER_REMOVED', user: { id: carol.id } });
    await settle();
    await gql(app, UPDATE_CHAT, { chatId, input: { title: 'Without carol' } }, { token: alice.accessToken });
    expect((await aliceSub.next()).data.chatEvents.type).toBe('UPDATED');
    expect(await carolSub.nothingWithin(300)).toBe(true);
  });
});

describe('typing', () => {
  it('shows others typing, and ends a signal that is not refreshed', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const bobSub = subscribe(ws(bob.accessToken), TYPING, { chatId });
    const aliceSub = subscribe(ws(alice.accessToken), TYPING, { chatId });
    await settle();
    const setTyping = (isTyping: boolean) =>
      gql(app, `mutation ($c: ID!, $t: Boolean!) { setTyping(chatId: $c, isTyping: $t) }`, { c: chatId, t: isTyping }, { token: alice.accessToken });

    expect((await setTyping(true)).data.setTyping).toBe(true);
    expect((await bobSub.next()).data.typing).toEqual({ chatId, isTyping: true, user: { id: alice.id } });
    await setTyping(true); // a refresh is not a new event
    const started = Date.now();
    expect((await bobSub.next(2_000)).data.typing).toEqual({ chatId, isTyping: false, user: { id: alice.id } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    // The typist does not see their own signal.
    expect(aliceSub.results).toHaveLength(0);
  });

  it('is NOT_FOUND for strangers, both ways', async () => {
    const [alice, eve] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Quiet', memberIds: [] });
    expect((await subscribe(ws(eve.accessToken), TYPING, { chatId }).next()).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, START_TYPING, { chatId, isTyping: true }, { token: eve.accessToken }))).toBe('NOT_FOUND');
  });
});

describe('presence', () => {
  it('goes ONLINE with a connection and OFFLINE with lastSeenAt when it closes', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const aliceSub = subscribe(ws(alice.accessToken), PRESENCE, {});
    await settle();

    const bobConnection = ws(bob.accessToken);
    await bobConnection.connected;
    expect((await aliceSub.next()).data.presence).toMatchObject({ user: { id: bob.id }, status: 'ONLINE', lastSeenAt: null });
    const seen = await gql(app, `query ($id: ID!) { user(id: $id) { status } }`, { id: bob.id }, { token: alice.accessToken });
    expect(seen.data.user.status).toBe('ONLINE');

    await gql(app, SET_STATUS, { status: 'BUSY' }, { token: bob.accessToken });
    expect((await aliceSub.next()).data.presence).toMatchObject({ user: { id: bob.id }, status: 'BUSY' });

    await bobConnection.dispose();
    const offline = (await aliceSub.next(3_000)).data.presence;
    expect(offline).toMatchObject({ user: { id: bob.id }, status: 'OFFLINE' });
    expect(Date.now() - new Date(offline.lastSeenAt).getTime()).toBeLessThan(5_000);
    const after = await gql(app, `query ($id: ID!) { user(id: $id) { status lastSeenAt } }`, { id: bob.id }, { token: alice.accessToken });
    expect(after.data.user.status).toBe('OFFLINE');
  });

  it('follows only users the viewer shares a chat with', async () => {
    const [alice, stranger] = await Promise.all([registerUser(app), registerUser(app)]);
    const sub = subscribe(ws(alice.accessToken), PRESENCE, { userIds: [stranger.id] });
    await settle();
    const strangerConnection = ws(stranger.accessToken);
    await strangerConnection.connected;
    expect(await sub.nothingWithin(300)).toBe(true);
  });
});
