// Two server instances (two ports) sharing one PostgreSQL and one Redis, as behind a load balancer.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, sendText, startTestApp, testRedisUrl } from './support/helpers.ts';
import { LOGOUT, MESSAGE_EVENTS, PRESENCE, START_TYPING, TYPING } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const REDIS_URL = testRedisUrl();
const prefix = `kocmoc-test:${randomUUID()}:`;
let a: App;
let b: App;
let urlA: string;
let urlB: string;
const sockets = openConnections();

beforeAll(async () => {
  const start = () =>
    startTestApp({ REDIS_URL }, { channelPrefix: prefix, presence: { keyPrefix: prefix, offlineGraceMs: 150, heartbeatMs: 100, instanceTimeoutMs: 500 } });
  [a, b] = await Promise.all([start(), start()]);
  [urlA, urlB] = [(await a.start()).url, (await b.start()).url];
});
afterAll(async () => {
  await sockets.closeAll();
  await Promise.all([a?.stop(), b?.stop()]);
});

const ws = (url: string, token: string) => sockets.connect(url, token);

describe('two instances, one Redis', () => {
  it('deliver a message sent through instance B to a subscriber on instance A', async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(b)]);
    const chatId = await createChat(b, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    const sub = subscribe(ws(urlA, alice.accessToken), MESSAGE_EVENTS);
    await settle(600); // the first subscription of a fresh instance also opens its Redis subscriptions
    const sent = await sendText(b, bob, chatId, 'across instances');
    expect((await sub.next()).data.messageEvents).toEqual({
      type: 'CREATED',
      chatId,
      seq: sent.seq,
      message: { id: sent.id, seq: sent.seq, text: 'across instances', deletedAt: null, sender: { id: bob.id } },
    });
  });

  it('share presence: a connection on B shows ONLINE to a subscriber on A, and OFFLINE after it closes', async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    await createChat(a, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sub = subscribe(ws(urlA, alice.accessToken), PRESENCE);
    await settle();
    const bobOnB = ws(urlB, bob.accessToken);
    await bobOnB.connected;
    expect((await sub.next()).data.presence).toEqual({ user: { id: bob.id }, status: 'ONLINE', lastSeenAt: null });
    const viaA = await gql(a, `query ($id: ID!) { user(id: $id) { status } }`, { id: bob.id }, { token: alice.accessToken });
    expect(viaA.data.user.status).toBe('ONLINE');
    await bobOnB.dispose();
    expect((await sub.next(3_000)).data.presence).toEqual({ user: { id: bob.id }, status: 'OFFLINE', lastSeenAt: expect.any(String) });
  });

  it('close a session’s sockets on every instance when it logs out on one', async () => {
    const user = await registerUser(a);
    const onA = ws(urlA, user.accessToken);
    await onA.connected;
    await gql(b, LOGOUT, {}, { token: user.accessToken });
    expect(await onA.closed).toBe(4401);
  });

  it('stop a logged-out session on every instance, even where it was cached', async () => {
    const user = await registerUser(a);
    expect((await gql(a, `{ me { id } }`, {}, { token: user.accessToken })).data.me.id).toBe(user.id); // cached on A
    await gql(b, LOGOUT, {}, { token: user.accessToken });
    // The end travels through Redis: allow it a moment, no more.
    let code: string | undefined;
    for (let i = 0; i < 20 && code !== 'UNAUTHENTICATED'; i++) {
      code = (await gql(a, `{ me { id } }`, {}, { token: user.accessToken })).errors?.[0]?.extensions?.code;
      if (code !== 'UNAUTHENTICATED') await settle(25);
    }
    expect(code).toBe('UNAUTHENTICATED');
  });

  it('deliver typing across instances', async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(a)]);
    const chatId = await createChat(a, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sub = subscribe(ws(urlA, bob.accessToken), TYPING, { chatId });
    await settle();
    await gql(b, START_TYPING, { chatId, isTyping: true }, { token: alice.accessToken });
    expect((await sub.next()).data.typing).toEqual({ chatId, isTyping: true, user: { id: alice.id } });
  });
});
