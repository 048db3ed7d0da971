// Push notifications end to end: a real local push service over HTTPS decrypts what it receives.
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createPrisma } from '../src/db/client.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { createOutboxRelay } from '../src/notifications/outbox.ts';
import { createLocalQueue } from '../src/notifications/queue.ts';
import { capturedLogs, codeOf, createChat, gql, registerUser, scratchDatabaseUrl, sendText, startTestApp, testRedisUrl, unusedPort, type TestUser } from './support/helpers.ts';
import { addDevice, fetchBundles } from './support/devices.ts';
import { startRedisServer, type RedisServer } from './support/faults.ts';
import { encryptFor, startSession } from './support/e2e-client.ts';
import { BLOCK_USER, CREATE_CHAT, EDIT_MESSAGE, MUTE_CHAT } from './support/operations.ts';
import { startPushService, type PushDevice, type PushService } from './support/push-service.ts';
import { spawnWorker, startWorker as startWorkerProcess } from './support/push-worker.ts';
import { connect } from './support/ws-helpers.ts';

const REGISTER = `mutation ($input: PushSubscriptionInput!) { registerPushSubscription(input: $input) { id endpoint } }`;
// Every app relays the whole outbox table: on the shared test database, other files' apps would
// take (and try to deliver) these messages' notifications. This file keeps a database of its own.
const database = scratchDatabaseUrl('kocmoc_push');
const startApp = (env: Record<string, string> = {}, options: Parameters<typeof startTestApp>[1] = {}) =>
  startTestApp({ DATABASE_URL: database.url, ...env }, options);
let push: PushService;
let app: App;
let appRunning = false;

beforeAll(async () => {
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  push = await startPushService();
  app = await startApp(
    // A burst's sends must fall within one window even when each takes a few hundred ms on a busy machine.
    { PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true', PUSH_COLLAPSE_WINDOW: '600ms' },
    { notifications: { pushTls: push.tls }, presence: { offlineGraceMs: 200 } },
  );
  appRunning = true;
});
afterAll(async () => {
  if (appRunning) await app.stop();
  await push?.close();
  await database.drop();
});

async function subscribeDevice(target: App, user: TestUser, device: PushDevice) {
  const result = await gql(target, REGISTER, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: user.accessToken });
  if (!result.data?.registerPushSubscription) throw new Error(JSON.stringify(result.errors));
  return result.data.registerPushSubscription.id as string;
}

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('push subscriptions', () => {
  it('serves the VAPID public key', async () => {
    const result = await gql(app, `{ vapidPublicKey }`);
    expect(result.data.vapidPublicKey).toBe(app.services.config.push.vapid.publicKey);
    expect(Buffer.from(result.data.vapidPublicKey, 'base64url')).toHaveLength(65);
  });

  it('registers per device, updates on re-registration, and unregisters', async () => {
    const user = await registerUser(app);
    const device = push.device();
    const first = await subscribeDevice(app, user, device);
    const again = await subscribeDevice(app, user, device);
    expect(again).toBe(first);
    expect(await app.services.prisma.pushSubscription.count({ where: { endpoint: device.endpoint } })).toBe(1);
    const out = `mutation ($e: String!) { unregisterPushSubscription(endpoint: $e) }`;
    expect((await gql(app, out, { e: device.endpoint }, { token: user.accessToken })).data.unregisterPushSubscription).toBe(true);
    expect((await gql(app, out, { e: device.endpoint }, { token: user.accessToken })).data.unregisterPushSubscription).toBe(false);
  });

  it.each([
    ['plain http', { endpoint: 'http://push.example.com/x' }, 'input.endpoint'],
    ['not a URL', { endpoint: 'nope' }, 'input.endpoint'],
    ['a short p256dh key', { keys: { p256dh: 'AAAA', auth: 'x'.repeat(22) } }, 'input.keys.p256dh'],
    ['a bad auth secret', { keys: { auth: 'short' } }, 'input.keys.auth'],
  ])('refuses %s with BAD_USER_INPUT', async (_case, override, field) => {
    const user = await registerUser(app);
    const device = push.device();
    const input = { endpoint: device.endpoint, ...override, keys: { ...device.keys, ...(override as any).keys } };
    const result = await gql(app, REGISTER, { input }, { token: user.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('refuses private addresses unless allowed', async () => {
    const strict = await startApp();
    try {
      const user = await registerUser(strict);
      const device = push.device();
      const result = await gql(strict, REGISTER, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: user.accessToken });
      expect(codeOf(result)).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.message).toMatch(/public address/);
    } finally {
      await strict.stop();
    }
  });
});

describe('delivery (in-process, no Redis)', () => {
  it('pushes an encrypted preview to an offline recipient, not to the sender', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app, { displayName: 'Bob' })]);
    const [aliceDevice, bobDevice] = [push.device(), push.device()];
    await subscribeDevice(app, alice, aliceDevice);
    await subscribeDevice(app, bob, bobDevice);
    const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    const sent = await sendText(app, bob, chatId, 'Are we still on for lunch?');
    await push.waitFor(aliceDevice, 1);
    expect(aliceDevice.accepted[0]).toMatchObject({ type: 'message', chatId, messageId: sent.id, title: 'Bob', body: 'Are we still on for lunch?', unread: 1 });
    expect(aliceDevice.requests[0]!.headers.topic).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(String(aliceDevice.requests[0]!.headers.authorization)).toMatch(/^vapid t=.+, k=/);
    await idle(400);
    expect(bobDevice.requests).toHaveLength(0);
  });

  it('pushes no preview for an end-to-end encrypted chat: only chatId, messageId, unread and badge', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app, { displayName: 'Bob' })]);
    const aliceDevice = push.device();
    await subscribeDevice(app, alice, aliceDevice);
    const [alicePhone, bobPhone] = [await addDevice(app, alice), await addDevice(app, bob)];
    const chat = await gql(app, CREATE_CHAT, { input: { kind: 'DIRECT', memberIds: [alice.id], encrypted: true } }, { token: bob.accessToken });
    const chatId = chat.data.createChat.id;
    startSession(bobPhone, (await fetchBundles(app, bobPhone.token, alice.id))[0]!);
    const text = 'Never in a push notification';
    const envelopes = [encryptFor(bobPhone, alicePhone.id, text)];
    const sent = await gql(app, `mutation ($input: SendEncryptedMessageInput!) { sendEncryptedMessage(input: $input) { id } }`, {
      input: { chatId, kind: 'TEXT', envelopes },
    }, { token: bobPhone.token });
    await push.waitFor(aliceDevice, 1);
    expect(aliceDevice.accepted[0]).toEqual({ chatId, messageId: sent.data.sendEncryptedMessage.id, unread: 1, badge: 1 });
    expect(JSON.stringify(aliceDevice.accepted[0])).not.toContain(text);
  });

  it('skips muted chats until unmuted, and recipients who are connected', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device();
    await subscribeDevice(app, alice, device);
    const chatId = await createChat(app, bob, { kind: 'GROUP', title: 'Muted', memberIds: [alice.id] });
    const mute = await gql(app, `mutation ($c: ID!) { muteChat(chatId: $c) { mutedUntil } }`, { c: chatId }, { token: alice.accessToken });
    expect(mute.data.muteChat.mutedUntil).toBeTruthy();
    await sendText(app, bob, chatId, 'muted');
    await idle(500);
    expect(device.requests).toHaveLength(0);

    await gql(app, `mutation ($c: ID!) { unmuteChat(chatId: $c) { mutedUntil } }`, { c: chatId }, { token: alice.accessToken });
    const { url } = await app.start();
    const connection = connect(url, alice.accessToken);
    await connection.connected;
    await sendText(app, bob, chatId, 'you are online');
    await idle(500);
    expect(device.requests).toHaveLength(0);
    await connection.dispose();
    await idle(600); // the presence grace runs out: alice is offline again
    await sendText(app, bob, chatId, 'now you are not');
    await push.waitFor(device, 1);
    expect(device.accepted[0].body).toMatch(/now you are not/);
  });

  it('collapses a burst into one notification counting them all', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device();
    await subscribeDevice(app, alice, device);
    const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    for (let i = 1; i <= 5; i++) await sendText(app, bob, chatId, `burst ${i}`);
    await push.waitFor(device, 1);
    await idle(1_000);
    expect(device.accepted).toHaveLength(1);
    expect(device.accepted[0]).toMatchObject({ body: 'burst 5', unread: 5 });
  });

  it('deletes a subscription the push service says is gone (410)', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device([410]);
    const id = await subscribeDevice(app, alice, device);
    const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    await sendText(app, bob, chatId, 'anyone?');
    for (let i = 0; i < 50 && (await app.services.prisma.pushSubscription.count({ where: { id } })) > 0; i++) await idle(100);
    expect(await app.services.prisma.pushSubscription.count({ where: { id } })).toBe(0);
    expect(device.requests.map((r) => r.status)).toEqual([410]);
  });

  it('retries a 500 and delivers exactly once', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device([500]);
    await subscribeDevice(app, alice, device);
    const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    await sendText(app, bob, chatId, 'second time lucky');
    await push.waitFor(device, 1);
    await idle(2_500);
    expect(device.requests.map((r) => r.status)).toEqual([500, 201]);
    expect(device.accepted).toHaveLength(1);
  });

  it('writes no outbox row and pushes nothing with PUSH_ENABLED=false', async () => {
    const off = await startApp({ PUSH_ENABLED: 'false', PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true' }, { notifications: { pushTls: push.tls } });
    try {
      const [alice, bob] = await Promise.all([registerUser(off), registerUser(off)]);
      const device = push.device();
      await subscribeDevice(off, alice, device);
      const chatId = await createChat(off, bob, { kind: 'DIRECT', memberIds: [alice.id] });
      const sent = await sendText(off, bob, chatId, 'silent');
      expect(await off.services.prisma.notificationOutbox.count({ where: { messageId: sent.id } })).toBe(0);
      await idle(500);
      expect(device.requests).toHaveLength(0);
    } finally {
      await off.stop();
    }
  });

  it('does not push to someone who blocked the sender', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = push.device();
    await subscribeDevice(app, alice, device);
    const chatId = await createChat(app, bob, { kind: 'GROUP', title: 'Blocked', memberIds: [alice.id] });
    await gql(app, BLOCK_USER, { userId: bob.id }, { token: alice.accessToken });
    await sendText(app, bob, chatId, 'blocked');
    await idle(500);
    expect(device.requests).toHaveLength(0);
  });
});

describe('worker process (Redis)', () => {
  const REDIS_URL = testRedisUrl();
  const queuePrefix = `kocmoc-test-${randomUUID().slice(0, 8)}`;
  let api: App;
  const workers: ChildProcess[] = [];

  beforeAll(async () => {
    // The in-process app above would relay (and deliver) these messages itself: only workers may here.
    if (appRunning) await app.stop();
    appRunning = false;
    api = await startApp({ REDIS_URL, JOB_QUEUE_PREFIX: queuePrefix, PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true', PUSH_COLLAPSE_WINDOW: '0s' });
  });
  afterAll(async () => {
    for (const worker of workers) worker.kill('SIGKILL');
    await api?.stop();
  });

  /** `npm run worker` as a child process with a 2 s JOB_LOCK_DURATION; its log lines go to `lines`. */
  async function startWorker(env: Record<string, string> = {}, lines: string[] = []): Promise<ChildProcess> {
    const worker = await startWorkerProcess({ api, push, redisEnv: { REDIS_URL }, queuePrefix }, env, lines);
    workers.push(worker);
    return worker;
  }

  // A worker killed mid-job, its job taken over by another: a multi-instance scenario
  // (test/support/multi-instance.ts), run on one Redis and on a Redis Cluster.

  /** The only worker, started with `env`, in the middle of pushing `text`: the push service is answering per `script`. */
  async function workerMidJob(script: Array<'hold' | 'slow'>, text: string, env: Record<string, string> = {}, lines: string[] = []) {
    const [alice, bob] = await Promise.all([registerUser(api), registerUser(api)]);
    for (const earlier of workers) earlier.kill('SIGKILL'); // this worker must be the one running the job
    const device = push.device(script);
    await subscribeDevice(api, alice, device);
    const chatId = await createChat(api, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    const worker = await startWorker(env, lines);
    const exited = new Promise<number | null>((resolve) => worker.once('exit', resolve));
    await sendText(api, bob, chatId, text);
    for (let i = 0; i < 100 && device.requests.length === 0; i++) await idle(100);
    expect(device.requests).toHaveLength(1);
    return { worker, exited, device };
  }

  it('finishes a running job before stopping on SIGTERM', async () => {
    const { worker, exited, device } = await workerMidJob(['slow'], 'before shutdown');
    // The push service is still answering: stopping now must wait for it.
    worker.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(device.accepted.map((p) => p.body)).toEqual(['before shutdown']);
  }, 40_000);

  it('stops within SHUTDOWN_TIMEOUT on SIGTERM when a job does not finish; another worker takes the job over', async () => {
    const lines: string[] = [];
    // The push service never answers: the worker is stuck in the request.
    const { worker, exited, device } = await workerMidJob(['hold'], 'held at shutdown', { SHUTDOWN_TIMEOUT: '1s' }, lines);

    const started = performance.now();
    worker.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Rather than until the push request times out (10 s).
    expect(performance.now() - started).toBeLessThan(3_000);
    const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40);
    expect(warnings.map((entry) => entry.msg)).toContainEqual(expect.stringMatching(/jobs still running/));

    await startWorker();
    await push.waitFor(device, 1, 20_000);
    expect(device.accepted.map((p) => p.body)).toEqual(['held at shutdown']);
  }, 40_000);

  it("runs an edit's new mention as jobs of its own: the worker pushes it into a muted chat", async () => {
    const [alice, bob] = await Promise.all([registerUser(api), registerUser(api)]);
    const device = push.device();
    await subscribeDevice(api, alice, device);
    const chatId = await createChat(api, bob, { kind: 'GROUP', title: 'Edited', memberIds: [alice.id] });
    await gql(api, MUTE_CHAT, { chatId }, { token: alice.accessToken });
    await startWorker();
    const sent = await sendText(api, bob, chatId, 'nobody named');
    // The send's own fan-out done first (an edit before it would make that one push the mention too).
    for (let i = 0; i < 200 && ((await api.services.prisma.notificationOutbox.count()) > 0 || (await api.notifications.queue.depth()) > 0); i++) await idle(50);
    const edited = await gql(api, EDIT_MESSAGE, { id: sent.id, text: `now @${alice.username}` }, { token: bob.accessToken });
    expect(edited.errors).toBeUndefined();
    await push.waitFor(device, 1, 20_000);
    expect(device.accepted[0]).toMatchObject({ messageId: sent.id, mention: true, edited: true, body: expect.stringContaining('now @') });
    await idle(500);
    expect(device.accepted).toHaveLength(1); // the send itself pushed nothing into the muted chat
  }, 40_000);
});

describe('Redis restart', () => {
  const queuePrefix = `kocmoc-test-${randomUUID().slice(0, 8)}`;
  const dir = mkdtempSync(join(tmpdir(), 'kocmoc-redis-'));
  let redis: RedisServer | undefined;
  let api: App | undefined;
  let worker: ChildProcess | undefined;

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await api?.stop();
    await redis?.kill();
  });

  it('keeps queued jobs across a Redis restart', async () => {
    // A Redis of our own that persists every write (AOF, fsync always), so it can be restarted.
    redis = await startRedisServer(['--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always']);
    const REDIS_URL = redis.url;
    api = await startApp({ REDIS_URL, JOB_QUEUE_PREFIX: queuePrefix, PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true', PUSH_COLLAPSE_WINDOW: '0s' });
    const [alice, bob] = await Promise.all([registerUser(api), registerUser(api)]);
    const device = push.device();
    await subscribeDevice(api, alice, device);
    const chatId = await createChat(api, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    await sendText(api, bob, chatId, 'queued before the restart');
    // Relayed from the outbox: the fan-out job now waits in Redis (no worker runs yet).
    for (let i = 0; i < 100 && (await api.services.prisma.notificationOutbox.count()) > 0; i++) await idle(50);
    expect(await api.notifications.queue.depth()).toBe(1);
    expect(device.requests).toHaveLength(0);

    await redis.kill();
    await redis.start();

    worker = spawnWorker({ api, push, redisEnv: { REDIS_URL }, queuePrefix });
    await push.waitFor(device, 1, 20_000);
    expect(device.accepted[0].body).toBe('queued before the restart');
  }, 60_000);
});

describe('outbox relay', () => {
  it('does nothing when kicked after it stopped: no query on a pool that closes with it', async () => {
    const queries: string[] = [];
    const { logs, logger } = capturedLogs();
    const prisma = createPrisma(database.url, { onQuery: (sql) => queries.push(sql) });
    const relay = createOutboxRelay({ prisma, queue: createLocalQueue(async () => {}, logger), logger });
    await relay.stop();
    await prisma.$disconnect();

    // As a request that outlived shutdown would, after sending its message.
    relay.kick();
    await relay.drained();
    expect(queries).toEqual([]);
    expect(logs).toEqual([]);
  });
});
