// Ringing: the incoming-call push, the ringing deadline (MISSED and a missed-call push), and a
// deadline that survives a restart, without Redis (recovered from PostgreSQL) and with it (a
// BullMQ delayed job). Apps recover every ringing call of their database on start, so this file
// keeps a database of its own.
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALL_TIMER_QUEUE } from '../src/calls/timers.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, scratchDatabaseUrl, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';
import { START_CALL } from './support/call-peers.ts';
import { LOGIN, REGISTER_PUSH } from './support/operations.ts';
import { startPushService, type PushService } from './support/push-service.ts';

const database = scratchDatabaseUrl('kocmoc_calls_ringing');
const CALL = `query ($id: ID!) { call(id: $id) { state endReason endedAt } }`;
let push: PushService;

const startApp = (env: Record<string, string> = {}) =>
  startTestApp({ DATABASE_URL: database.url, PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true', ...env }, { notifications: { pushTls: push.tls } });

beforeAll(async () => {
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  push = await startPushService();
});
afterAll(async () => {
  await push?.close();
  await database.drop();
});

async function pairWithPush(app: App) {
  const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
  const phone = push.device();
  await gql(app, REGISTER_PUSH, { input: { endpoint: phone.endpoint, keys: phone.keys } }, { token: bob.accessToken });
  return { alice, bob, chatId, phone };
}

async function startCall(app: App, caller: TestUser, chatId: string, media: 'AUDIO' | 'VIDEO' = 'AUDIO') {
  const result = await gql(app, START_CALL, { input: { chatId, media } }, { token: caller.accessToken });
  if (!result.data?.startCall) throw new Error(JSON.stringify(result.errors));
  return result.data.startCall as { id: string };
}

/** The call once it ended, polling (the deadline fires on its own). */
async function whenEnded(app: App, user: TestUser, callId: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const call = (await gql(app, CALL, { id: callId }, { token: user.accessToken })).data.call;
    if (call.state === 'ENDED') return call;
    if (Date.now() > deadline) throw new Error(`call still ${call.state} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('ringing', () => {
  it('pushes the incoming call (Urgency high, TTL 30, Topic the call) even in a muted chat, then MISSED and a missed-call push', async () => {
    const app = await startApp({ CALL_RING_SECONDS: '1.5' });
    try {
      const { alice, bob, chatId, phone } = await pairWithPush(app);
      await gql(app, `mutation ($c: ID!) { muteChat(chatId: $c) { id } }`, { c: chatId }, { token: bob.accessToken });
      const call = await startCall(app, alice, chatId, 'VIDEO');
      await push.waitFor(phone, 1);
      expect(phone.accepted[0]).toMatchObject({ type: 'call', event: 'incoming', callId: call.id, chatId, media: 'VIDEO', body: 'Incoming video call' });
      const headers = phone.requests[0]!.headers;
      expect(headers.urgency).toBe('high');
      expect(headers.ttl).toBe('30');
      expect(headers.topic).toBe(call.id.replaceAll('-', ''));

      const ended = await whenEnded(app, alice, call.id, 5_000);
      expect(ended.endReason).toBe('MISSED');
      await push.waitFor(phone, 2);
      expect(phone.accepted[1]).toMatchObject({ type: 'call', event: 'missed', callId: call.id, body: 'Missed video call' });
      expect(phone.requests[1]!.headers.topic).toBe(call.id.replaceAll('-', ''));
    } finally {
      await app.stop();
    }
  });

  it('tells the other devices that rang through a push that another device answered', async () => {
    const app = await startApp();
    try {
      const { alice, bob, chatId, phone } = await pairWithPush(app);
      const laptop = (await gql(app, LOGIN, { input: { login: bob.username, password: bob.password } })).data.login.accessToken;
      const laptopPush = push.device();
      await gql(app, REGISTER_PUSH, { input: { endpoint: laptopPush.endpoint, keys: laptopPush.keys } }, { token: laptop });
      const call = await startCall(app, alice, chatId);
      await Promise.all([push.waitFor(phone, 1), push.waitFor(laptopPush, 1)]);
      await gql(app, `mutation ($id: ID!) { answerCall(callId: $id) { id } }`, { id: call.id }, { token: laptop });
      await push.waitFor(phone, 2);
      expect(phone.accepted[1]).toMatchObject({ type: 'call', event: 'answered-elsewhere', callId: call.id });
      expect(phone.requests[1]!.headers).toMatchObject({ urgency: 'high', ttl: '30', topic: call.id.replaceAll('-', '') });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(laptopPush.accepted.map((p) => p.event)).toEqual(['incoming']);
    } finally {
      await app.stop();
    }
  });

  it('pushes a missed call when the caller hangs up before an answer, and nothing when the callee declined', async () => {
    const app = await startApp();
    try {
      const { alice, bob, chatId, phone } = await pairWithPush(app);
      const first = await startCall(app, alice, chatId);
      await push.waitFor(phone, 1);
      await gql(app, `mutation ($id: ID!) { endCall(callId: $id) { id } }`, { id: first.id }, { token: alice.accessToken });
      await push.waitFor(phone, 2);
      expect(phone.accepted[1]).toMatchObject({ event: 'missed', callId: first.id });
      const second = await startCall(app, alice, chatId);
      await push.waitFor(phone, 3);
      await gql(app, `mutation ($id: ID!) { declineCall(callId: $id) { id } }`, { id: second.id }, { token: bob.accessToken });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(phone.accepted.map((p) => p.event)).toEqual(['incoming', 'missed', 'incoming']);
    } finally {
      await app.stop();
    }
  });
});

describe('a caller the callee blocked', () => {
  it('rings nothing and pushes nothing; the caller sees DECLINED', async () => {
    const app = await startApp({ CALL_RING_SECONDS: '1.5' });
    try {
      const { alice, bob, chatId, phone } = await pairWithPush(app);
      await gql(app, `mutation ($u: ID!) { blockUser(userId: $u) }`, { u: alice.id }, { token: bob.accessToken });
      const call = await startCall(app, alice, chatId);
      const ended = await whenEnded(app, alice, call.id, 5_000);
      expect(ended.endReason).toBe('DECLINED');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(phone.requests).toEqual([]);
    } finally {
      await app.stop();
    }
  });
});

describe('a restart while a call rings', () => {
  const RING_SECONDS = 3;

  async function restartDuringRinging(env: Record<string, string>, whileDown?: () => Promise<void>) {
    const first = await startApp({ CALL_RING_SECONDS: String(RING_SECONDS), ...env });
    const { alice, chatId } = await pairWithPush(first);
    const call = await startCall(first, alice, chatId);
    const ringUntil = (await first.services.prisma.call.findUniqueOrThrow({ where: { id: call.id } })).ringUntil;
    await first.stop();
    await whileDown?.();
    const second = await startApp({ CALL_RING_SECONDS: String(RING_SECONDS), ...env });
    try {
      const ended = await whenEnded(second, alice, call.id, RING_SECONDS * 1000 + 5_000);
      expect(ended.endReason).toBe('MISSED');
      // On time: not before the deadline, and soon after it.
      const late = new Date(ended.endedAt).getTime() - ringUntil.getTime();
      expect(late).toBeGreaterThanOrEqual(-100);
      expect(late).toBeLessThan(1_500);
    } finally {
      await second.stop();
    }
  }

  it('still ends the call on time without Redis (the deadline is recovered from PostgreSQL)', async () => {
    await restartDuringRinging({});
  });

  it('still ends the call on time with Redis, where the deadline waits as a BullMQ delayed job', async () => {
    const prefix = `kocmoc-test-${randomUUID()}`;
    await restartDuringRinging({ REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: prefix }, async () => {
      const connection = new Redis(testRedisUrl(), { maxRetriesPerRequest: null });
      const queue = new Queue(CALL_TIMER_QUEUE, { connection, prefix });
      try {
        expect(await queue.getDelayedCount()).toBeGreaterThanOrEqual(1);
      } finally {
        await queue.close();
        await connection.quit();
      }
    });
  });
});
