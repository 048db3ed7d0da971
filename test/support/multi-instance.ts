// Two API instances behind one Redis target, as behind a load balancer: the scenarios every Redis
// deployment must pass (events across instances, catch-up, presence, typing, logout, scheduled sends, rate limits,
// push jobs, a worker killed mid-push). test/cluster.test.ts runs them on one Redis, test/redis-cluster.test.ts on a Redis
// Cluster: the same bodies, so the cluster is held to exactly what one Redis does.
import { randomUUID } from 'node:crypto';
import calculateSlot from 'cluster-key-slot';
import type { Cluster, Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { applyMigrations } from '../../src/db/migrate/index.ts';
import { ensureDatabase } from '../../src/db/pg-admin.ts';
import { createLogger } from '../../src/logger.ts';
import { startBullWorker } from '../../src/notifications/queue.ts';
import { channels } from '../../src/realtime/events.ts';
import { connectRedis, isCluster } from '../../src/redis/connection.ts';
import type { App } from '../../src/server/app.ts';
import { codeOf, createChat, gql, onlyRateLimits, registerUser, scratchDatabaseUrl, sendText, startTestApp } from './helpers.ts';
import { LOGOUT, MESSAGE_EVENTS, PRESENCE, REGISTER_PUSH, START_TYPING, TYPING } from './operations.ts';
import { startPushService, type PushService } from './push-service.ts';
import { killWorker, startWorker } from './push-worker.ts';
import { openConnections, subscribe } from './ws-helpers.ts';

export interface Instances {
  apps: App[];
  urls: string[];
  /** Every channel and key of these apps starts with it. */
  prefix: string;
  /** The Redis target (`config.redisUrl`): a redis:// URL or a cluster target. */
  redisUrl: string;
  /** The environment that names it (`{ REDIS_URL }` or `{ REDIS_CLUSTER_NODES }`), for a worker process. */
  redisEnv: Record<string, string>;
  /** The apps' JOB_QUEUE_PREFIX. */
  queuePrefix: string;
  push: PushService;
  sockets: ReturnType<typeof openConnections>;
  /**
   * Resolves once Redis has a subscriber on each bus channel (`chat:<id>`, ...), so what is
   * published next reaches it; throws after `timeoutMs` naming the channels that have none.
   */
  untilSubscribed(busChannels: string[], timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Subscribers Redis counts on `channel`: classic pub/sub on one Redis, sharded on the master of its slot on a cluster. */
async function subscribersOf(redis: Redis, channel: string): Promise<number> {
  const cluster = redis as unknown as Cluster;
  if (!cluster.isCluster) return Number(((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]);
  const owner = cluster.slots[calculateSlot(channel)]?.[0];
  const master = cluster.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === owner);
  if (!master) return 0;
  return Number(((await master.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1]);
}

/**
 * Two apps on `redisEnv` (REDIS_URL or REDIS_CLUSTER_NODES), listening on free ports, with a
 * database of their own (push jobs relay the whole outbox table), a local push service, rate limits
 * on for searchUsers only (2 an hour) and short presence timings.
 */
export async function startInstances(redisEnv: Record<string, string>): Promise<Instances> {
  const database = scratchDatabaseUrl(`kocmoc_multi_${randomUUID().slice(0, 8)}`);
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  const push = await startPushService();
  const prefix = `kocmoc-test:${randomUUID()}:`;
  const queuePrefix = `kocmoc-test-${randomUUID().slice(0, 8)}`;
  const env = {
    DATABASE_URL: database.url,
    ...redisEnv,
    JOB_QUEUE_PREFIX: queuePrefix,
    PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true',
    PUSH_COLLAPSE_WINDOW: '0s',
    ...onlyRateLimits({ RATE_LIMIT_SEARCH: '2/1h' }),
  };
  const start = () =>
    startTestApp(env, {
      channelPrefix: prefix,
      rateLimitKeyPrefix: `${prefix}rl:`,
      presence: { keyPrefix: prefix, offlineGraceMs: 150, heartbeatMs: 100, instanceTimeoutMs: 500 },
      notifications: { pushTls: push.tls },
    });
  const apps = await Promise.all([start(), start()]);
  const urls = await Promise.all(apps.map(async (app) => (await app.start()).url));
  const redisUrl = apps[0]!.services.config.redisUrl!;
  const admin = connectRedis(redisUrl, { maxRetriesPerRequest: 1 });
  const sockets = openConnections();
  return {
    apps,
    urls,
    prefix,
    redisUrl,
    redisEnv,
    queuePrefix,
    push,
    sockets,
    async untilSubscribed(busChannels, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const counts = await Promise.all(busChannels.map((channel) => subscribersOf(admin, prefix + channel).catch(() => 0)));
        const missing = busChannels.filter((_, index) => counts[index] === 0);
        if (missing.length === 0) return;
        if (Date.now() > deadline) throw new Error(`no subscriber on ${missing.join(', ')} after ${timeoutMs} ms (${isCluster(redisUrl) ? 'cluster' : 'one Redis'})`);
        await idle(25);
      }
    },
    async stop() {
      await sockets.closeAll();
      await Promise.all(apps.map((app) => app.stop()));
      admin.disconnect();
      await push.close();
      await database.drop();
    },
  };
}

/** Registers the multi-instance scenarios as tests of the enclosing describe, on the instances `get()` returns once started. */
export function multiInstanceScenarios(get: () => Instances) {
  const ws = (index: number, token: string) => get().sockets.connect(get().urls[index]!, token);
  const SCHEDULE_MESSAGE = 'mutation ($input: ScheduleMessageInput!) { scheduleMessage(input: $input) { id } }';

  it('deliver a message sent through one instance to a subscriber on the other', async () => {
    const { apps, untilSubscribed } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[1]!)]);
    const chatId = await createChat(apps[1]!, bob, { kind: 'DIRECT', memberIds: [alice.id] });
    const sub = subscribe(ws(0, alice.accessToken), MESSAGE_EVENTS);
    await untilSubscribed([channels.chat(chatId)]);
    const sent = await sendText(apps[1]!, bob, chatId, 'across instances');
    expect((await sub.next()).data.messageEvents).toEqual({
      type: 'CREATED',
      chatId,
      seq: sent.seq,
      message: { id: sent.id, seq: sent.seq, text: 'across instances', deletedAt: null, sender: { id: bob.id } },
    });
  });

  it('catch up by sinceSeq on the other instance, then go on live', async () => {
    const { apps, untilSubscribed } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[0]!)]);
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'catch-up', memberIds: [bob.id] });
    const sent = [];
    for (let index = 0; index < 5; index++) sent.push(await sendText(apps[0]!, alice, chatId, `m${index}`));
    const stream = subscribe(ws(1, bob.accessToken), MESSAGE_EVENTS, { chatId, sinceSeq: sent[1]!.seq });
    const seqs = [];
    for (let index = 0; index < 3; index++) seqs.push((await stream.next()).data.messageEvents.seq);
    expect(seqs).toEqual(sent.slice(2).map((message) => message.seq));
    await untilSubscribed([channels.chat(chatId)]);
    const live = await sendText(apps[0]!, alice, chatId, 'live');
    expect((await stream.next()).data.messageEvents.seq).toBe(live.seq);
    expect(await stream.nothingWithin(200)).toBe(true);
  });

  it('share presence: a connection on one instance shows ONLINE to a subscriber on the other, and OFFLINE after it closes', async () => {
    const { apps, untilSubscribed } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[0]!)]);
    await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sub = subscribe(ws(0, alice.accessToken), PRESENCE);
    await untilSubscribed([channels.presence(bob.id)]);
    const bobOnB = ws(1, bob.accessToken);
    await bobOnB.connected;
    expect((await sub.next()).data.presence).toEqual({ user: { id: bob.id }, status: 'ONLINE', lastSeenAt: null });
    const viaA = await gql(apps[0]!, `query ($id: ID!) { user(id: $id) { status } }`, { id: bob.id }, { token: alice.accessToken });
    expect(viaA.data.user.status).toBe('ONLINE');
    await bobOnB.dispose();
    expect((await sub.next(5_000)).data.presence).toEqual({ user: { id: bob.id }, status: 'OFFLINE', lastSeenAt: expect.any(String) });
  });

  it('close a session’s sockets on every instance when it logs out on one', async () => {
    const { apps } = get();
    const user = await registerUser(apps[0]!);
    const onA = ws(0, user.accessToken);
    await onA.connected;
    await gql(apps[1]!, LOGOUT, {}, { token: user.accessToken });
    expect(await onA.closed).toBe(4401);
  });

  it('stop a logged-out session on every instance, even where it was cached', async () => {
    const { apps } = get();
    const user = await registerUser(apps[0]!);
    expect((await gql(apps[0]!, `{ me { id } }`, {}, { token: user.accessToken })).data.me.id).toBe(user.id); // cached on A
    await gql(apps[1]!, LOGOUT, {}, { token: user.accessToken });
    // The end travels through Redis: allow it a moment (bounded), no more.
    let code: string | undefined;
    for (let i = 0; i < 80 && code !== 'UNAUTHENTICATED'; i++) {
      code = codeOf(await gql(apps[0]!, `{ me { id } }`, {}, { token: user.accessToken }));
      if (code !== 'UNAUTHENTICATED') await idle(25);
    }
    expect(code).toBe('UNAUTHENTICATED');
  });

  it('deliver typing across instances', async () => {
    const { apps, untilSubscribed } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[0]!)]);
    const chatId = await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sub = subscribe(ws(0, bob.accessToken), TYPING, { chatId });
    await untilSubscribed([channels.chat(chatId)]);
    await gql(apps[1]!, START_TYPING, { chatId, isTyping: true }, { token: alice.accessToken });
    expect((await sub.next()).data.typing).toEqual({ chatId, isTyping: true, user: { id: alice.id } });
  });

  it('send a scheduled message once, at sendAt, from the delayed job whichever instance takes it', async () => {
    const { apps, untilSubscribed } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[0]!)]);
    const chatId = await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sub = subscribe(ws(0, bob.accessToken), MESSAGE_EVENTS, { chatId });
    await untilSubscribed([channels.chat(chatId)]);
    const sendAt = new Date(Date.now() + 1_500).toISOString();
    const scheduled = await gql(apps[1]!, SCHEDULE_MESSAGE, { input: { chatId, kind: 'TEXT', text: 'when due', sendAt } }, { token: alice.accessToken });
    expect(scheduled.errors).toBeUndefined();
    const event = (await sub.next(10_000)).data.messageEvents;
    expect(event).toMatchObject({ type: 'CREATED', chatId, message: { text: 'when due', sender: { id: alice.id } } });
    const history = await gql(apps[1]!, `query ($id: ID!) { chat(id: $id) { messages(last: 10) { edges { node { text } } } } }`, { id: chatId }, { token: bob.accessToken });
    expect(history.data.chat.messages.edges.map((edge: { node: { text: string } }) => edge.node.text)).toEqual(['when due']);
  });

  it('count a rate limit across both instances', async () => {
    const { apps } = get();
    const user = await registerUser(apps[0]!);
    const search = (index: number) => gql(apps[index]!, '{ searchUsers(query: "zz") { edges { node { id } } } }', {}, { token: user.accessToken });
    expect((await search(0)).errors).toBeUndefined();
    expect((await search(1)).errors).toBeUndefined();
    expect(codeOf(await search(0))).toBe('RATE_LIMITED');
  });

  it('push a message sent on one instance to an offline member, through a BullMQ worker on the shared Redis', async () => {
    const { apps, push, redisUrl, queuePrefix } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[1]!)]);
    const device = push.device();
    const registered = await gql(apps[1]!, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: bob.accessToken });
    expect(registered.errors).toBeUndefined();
    const chatId = await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    // The jobs' processor as `npm run worker` runs it; neither API instance runs jobs with Redis.
    const worker = startBullWorker({
      redisUrl,
      prefix: queuePrefix,
      process: apps[1]!.notifications.process,
      logger: createLogger('silent'),
      concurrency: 2,
      lockDurationMs: 5_000,
    });
    try {
      await sendText(apps[0]!, alice, chatId, 'pushed across instances');
      await push.waitFor(device, 1, 15_000);
      expect(device.accepted.map((payload) => payload.body)).toEqual(['pushed across instances']);
    } finally {
      await worker.close();
    }
  }, 30_000);

  it('take a push over from a worker process killed mid-job once its lock expires, and deliver it once', async () => {
    const { apps, push, redisEnv, queuePrefix } = get();
    const [alice, bob] = await Promise.all([registerUser(apps[0]!), registerUser(apps[1]!)]);
    // The first request is never answered: the first worker is stuck in it when it is killed.
    const device = push.device(['hold']);
    const registered = await gql(apps[1]!, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: bob.accessToken });
    expect(registered.errors).toBeUndefined();
    const chatId = await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const target = { api: apps[1]!, push, redisEnv, queuePrefix };
    const workers = [await startWorker(target)];
    try {
      await sendText(apps[0]!, alice, chatId, 'do not lose me');
      for (let i = 0; i < 150 && device.requests.length === 0; i++) await idle(100);
      expect(device.requests).toHaveLength(1);
      await killWorker(workers[0]!);

      workers.push(await startWorker(target));
      await push.waitFor(device, 1, 20_000);
      // Done once the queue is empty: a second run of the job (a duplicate) would have come by then.
      for (let i = 0; i < 100 && (await apps[0]!.notifications.queue.depth()) > 0; i++) await idle(100);
      expect(await apps[0]!.notifications.queue.depth()).toBe(0);
      expect(device.requests.map((request) => request.status)).toEqual([null, 201]);
      expect(device.accepted.map((payload) => payload.body)).toEqual(['do not lose me']);
    } finally {
      await Promise.all(workers.map(killWorker));
    }
  }, 60_000);
}
