// Push notifications through the real pipeline: sendMessage (API, REDIS_URL set) -> outbox row ->
// relay -> BullMQ fan-out job -> delivery jobs -> worker process(es) -> Web Push over HTTPS to a local
// push service (bench/push-endpoint.ts) that records every arrival.
//
// 1. Throughput: 1,000 offline recipients, one push subscription each, members of a few group chats;
//    one message per chat per phase, then deliveries/s and send->arrival latency through 1 and 2
//    worker processes at a couple of WORKER_CONCURRENCY values. Baseline in the same run: the same
//    number of Web Push requests from a tight loop in one process (bench/push-raw.ts: the product's
//    sender, no queue, no database). PUSH_COLLAPSE_WINDOW=0s, else a burst collapses by design.
// 2. Enqueue cost: sendMessage under the send-message bench's load shape (50 senders, direct chats,
//    closed loop) with PUSH_ENABLED=false and =true (the API only enqueues; jobs wait in Redis),
//    alternating, two rounds; BENCH_PUSH_COLOCATED=1 adds a run with a worker beside the API.
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import webpush from 'web-push';
import { buildApp, type App } from '../src/server/app.ts';
import { createPrisma } from '../src/db/client.ts';
import { openScratchDatabase } from '../src/db/database.ts';
import { chatTopic, deliver, fanOut, loadNotifiedMessage, type NotificationDeps } from '../src/notifications/jobs.ts';
import { jobIds, QUEUE_NAME } from '../src/notifications/queue.ts';
import { SEND_MESSAGE_RECEIPT } from '../test/support/operations.ts';
import { postGraphQL, SEQUENCE_PLACEHOLDER, startLoadProcess, type LoadProcess, type LoadSummary } from './graphql-load.ts';
import { othersBusyShare } from './host-cpu.ts';
import { countOf, maxOf, totalOf } from './outcomes.ts';
import { wallNow } from './push-child.ts';
import { startPushEndpoint, type PushDeviceKeys, type PushEndpoint, type Receipts } from './push-endpoint.ts';
import { addPushSubscriptions, createDirectChats } from './push-fixtures.ts';
import { countOutcomes, deleteKeys, readJobs } from './push-jobs.ts';
import { cpuBetween, findProcess, readCpu, startWorker, type CpuUse, type WorkerProcess } from './push-procs.ts';
import { startRawSender } from './push-raw.ts';
import { BENCH_MESSAGE_KEY, BENCH_TEXT, benchConfig, benchRedisUrl, SEND_LOAD, type BenchContext } from './setup.ts';
import { fixed, percentile, sleep, table } from './stats.ts';
import { createBenchUsers, createGroupChat, type BenchUser } from './ws-fixtures.ts';

const RECIPIENTS = 1_000;
/** One message per chat per phase: each phase delivers GROUP_CHATS x RECIPIENTS pushes. */
const GROUP_CHATS = 3;
const WARM_UP_MEMBERS = 200;
const PROBES = 10;
const RAW_CONCURRENCY = 16;
const WORKER_SETUPS = [
  { workers: 1, concurrency: 16 },
  { workers: 1, concurrency: 64 },
  { workers: 2, concurrency: 16 },
];
/** A phase ends when every push arrived or none arrived for this long. */
const STALL_MS = 5_000;
/** Enqueue cost: the send-message bench's direct-chat shape. */
const { senders: SENDERS, warmUpMs: WARM_UP_MS, durationMs: DURATION_MS } = SEND_LOAD;
/** The process's first API instance runs cold (JIT, caches): it gets a longer warm-up. */
const FIRST_WARM_UP_MS = 6_000;
const ENQUEUE_ROUNDS = 2;

interface Rig {
  endpoint: PushEndpoint;
  redis: Redis;
  redisUrl: string;
  /** Queue prefixes of this run, all cleaned at the end: [0] the throughput part's, then one per enqueue run. */
  prefixes: string[];
  databaseUrl: string;
  /** That database's name, whose backends' CPU the phases read. */
  databaseName: string;
  /** Environment shared by the API config and the workers. */
  env: Record<string, string>;
  redisPid: number | undefined;
}

interface Fixtures {
  hub: BenchUser;
  recipients: BenchUser[];
  senders: BenchUser[];
  devices: PushDeviceKeys[];
  subscriptionIds: string[];
  groupChatIds: string[];
  warmUpChatId: string;
  probeChatId: string;
  /** senders[i] <-> recipients[i]. */
  directChatIds: string[];
}

interface ThroughputRow {
  label: string;
  expected: number;
  delivered: number;
  duplicates: number;
  wallMs: number;
  latencies: number[];
  firstMs: number;
  outcomes: Record<string, number>;
  jobRunMs: number[];
  jobWaitMs: number[];
  fanOutMs: number[];
  probeMs: number[];
  /** CPU per push of the sending side (workers, or the raw loop), PostgreSQL, push service, Redis. */
  cpu: { sender: number; postgres: number; service: number; redis: number };
  hostBusy: number;
  /** Share of all cores busy with something other than the bench's processes (other load on the machine). */
  othersBusy: number;
  badSamples: number;
  warnings: string[];
}

export async function runPush({ databaseUrl }: BenchContext): Promise<void> {
  const started = performance.now();
  const redisUrl = benchRedisUrl();
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3, lazyConnect: true });
  await redis.connect().catch((error: unknown) => {
    redis.disconnect();
    throw new Error(`the push bench needs Redis at ${redisUrl} (REDIS_URL): ${String(error)}`);
  });
  // Its own scratch database beside the given one, named after it (kocmoc_bench_push beside
  // kocmoc_bench), so runs with BENCH_DATABASE_NAMEs of their own do not empty each other's:
  // workers and three API instances come and go here.
  const databaseName = `${decodeURIComponent(new URL(databaseUrl).pathname.slice(1))}_push`;
  const database = await openScratchDatabase(benchConfig({ DATABASE_URL: databaseUrl }), databaseName);
  const runId = randomUUID().slice(0, 8);
  // Throughput's queue prefix; the enqueue runs add theirs.
  const prefixes = [`kocmoc-bench-push-${runId}-tp`];
  let endpoint: PushEndpoint | undefined;
  try {
    endpoint = await startPushEndpoint();
    const vapid = webpush.generateVAPIDKeys();
    const rig: Rig = {
      endpoint,
      redis,
      redisUrl,
      prefixes,
      databaseUrl: database.url,
      databaseName,
      env: {
        DATABASE_URL: database.url,
        REDIS_URL: redisUrl,
        MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY,
        VAPID_PUBLIC_KEY: vapid.publicKey,
        VAPID_PRIVATE_KEY: vapid.privateKey,
        VAPID_SUBJECT: 'mailto:bench@kocmoc.invalid',
        PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true',
        PUSH_COLLAPSE_WINDOW: '0s',
      },
      redisPid: findProcess('redis-server'),
    };
    // describeMachine() names PostgreSQL; Redis matters as much here.
    const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
    console.log(`Redis ${redisVersion} at ${redisUrl}; queue prefixes kocmoc-bench-push-${runId}-*`);
    printLegend(rig);
    const app = await startApp(rig, prefixes[0]!, true);
    let fixtures: Fixtures;
    const rows: ThroughputRow[] = [];
    let diagnostics: string[];
    try {
      fixtures = await createFixtures(rig, app);
      rows.push(await rawPhase(rig, fixtures, app));
      for (const setup of WORKER_SETUPS) rows.push(await workerPhase(rig, fixtures, app, setup));
      diagnostics = await countJobStatements(app, fixtures);
    } finally {
      await app.stop();
    }
    printThroughput(rows);
    for (const line of diagnostics) console.log(line);
    console.log('');
    await enqueueCost(rig, fixtures);
  } finally {
    await endpoint?.close();
    const deleted = (await Promise.all(prefixes.map((prefix) => deleteKeys(redis, prefix)))).reduce((a, b) => a + b, 0);
    console.log(`cleaned up: ${deleted} Redis keys under ${prefixes.join(', ')}; the push bench took ${fixed((performance.now() - started) / 1_000, 0)} s`);
    await redis.quit();
    await database.stop();
  }
}

function printLegend(rig: Rig) {
  console.log(`push service: local HTTPS (self-signed, TLS 1.3, keep-alive) in its own process, answers 201 at once, records arrival + Topic;`);
  console.log(`  every 50th payload is decrypted afterwards (RFC 8291) and checked against the message sent`);
  console.log(`throughput: ${RECIPIENTS} offline recipients (1 push subscription each, no WebSocket) in ${GROUP_CHATS} group chats with one sender;`);
  console.log(`  one message per chat per phase, sent at once through sendMessage (API in this process, REDIS_URL=${rig.redisUrl})`);
  console.log(`  -> ${GROUP_CHATS * RECIPIENTS} pushes per phase; PUSH_COLLAPSE_WINDOW=0s (with the default 2s a burst collapses by design)`);
  console.log(`  workers: node --import tsx src/worker-main.ts, each phase after a ${WARM_UP_MEMBERS}-push warm-up; raw: same number of pushes, ${RAW_CONCURRENCY} in flight,`);
  console.log(`  product sender (web-push, aes128gcm, VAPID) in one process, no queue, no database`);
  console.log(`pushes/s = pushes / (first send -> last arrival), i.e. delivery jobs/s (+${GROUP_CHATS} fan-out jobs per phase);`);
  console.log(`  e2e = send start -> arrival at the push service (all processes, one clock);`);
  console.log(`  first = first send -> first arrival; idle = ${PROBES} single messages to one recipient, one at a time, after the burst;`);
  console.log(`  job run = a delivery job's finishedOn - processedOn (BullMQ, 1 ms resolution);`);
  console.log(`  cpu ms/push: sender = worker process(es) or raw loop, pg = bench database backends, svc = push service, redis = redis-server (shared);`);
  console.log(`  host % = all ${availableParallelism()} cores' busy share over the phase, whoever used them; others % = the part not used by`);
  console.log(`  the bench's processes, PostgreSQL or Redis (other load on the machine)`);
  console.log('');
}

/** An API instance on the scratch database; push on or off; statements counted. */
async function startApp(rig: Rig, queuePrefix: string, pushEnabled: boolean, statements?: { issued: number }): Promise<App & { url: string }> {
  const config = benchConfig({ ...rig.env, JOB_QUEUE_PREFIX: queuePrefix, PUSH_ENABLED: String(pushEnabled) });
  const app = await buildApp({
    config,
    // Own channels: other engineers' servers on this Redis must not receive our events.
    channelPrefix: `${queuePrefix}:`,
    onQuery: statements ? () => void statements.issued++ : undefined,
  });
  const { url } = await app.start();
  return Object.assign(app, { url });
}

async function createFixtures(rig: Rig, app: App): Promise<Fixtures> {
  const started = performance.now();
  const users = await createBenchUsers(app, 1 + RECIPIENTS + SENDERS, 'push');
  const [hub, ...rest] = users as [BenchUser, ...BenchUser[]];
  const recipients = rest.slice(0, RECIPIENTS);
  const senders = rest.slice(RECIPIENTS);
  const devices = await rig.endpoint.createDevices(RECIPIENTS);
  const subscriptionIds = await addPushSubscriptions(rig.databaseUrl, recipients, devices);
  const everyone = [hub.userId, ...recipients.map((user) => user.userId)];
  const groupChatIds: string[] = [];
  for (let index = 0; index < GROUP_CHATS; index++) groupChatIds.push(await createGroupChat(app, everyone, `Push bench ${index + 1}`));
  const warmUpChatId = await createGroupChat(app, everyone.slice(0, 1 + WARM_UP_MEMBERS), 'Push warm-up');
  const [probeChatId, ...directChatIds] = await createDirectChats(rig.databaseUrl, [
    [hub.userId, recipients[0]!.userId],
    ...senders.map((sender, index): [string, string] => [sender.userId, recipients[index]!.userId]),
  ]);
  console.log(`fixtures: ${users.length} users with sessions, ${RECIPIENTS} push subscriptions, ${GROUP_CHATS + 1} groups, ${SENDERS + 1} direct chats in ${fixed((performance.now() - started) / 1_000)} s`);
  return { hub, recipients, senders, devices, subscriptionIds, groupChatIds, warmUpChatId, probeChatId: probeChatId!, directChatIds };
}

/** sendMessage through the API; resolves with the message id and when the request started. */
async function send(app: App & { url: string }, user: BenchUser, chatId: string, text = BENCH_TEXT): Promise<{ id: string; chatId: string; sentAt: number }> {
  const sentAt = wallNow();
  const { sendMessage } = await postGraphQL(app.url, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text } }, user.accessToken);
  return { id: sendMessage.id as string, chatId, sentAt };
}

// ---- throughput ----

async function rawPhase(rig: Rig, fixtures: Fixtures, app: App): Promise<ThroughputRow> {
  const raw = startRawSender(app.services.config.push.vapid, rig.endpoint.certFile);
  const total = GROUP_CHATS * RECIPIENTS;
  // A payload of the product's shape and size, under a Topic of its own.
  const payload = JSON.stringify({ type: 'message', chatId: randomUUID(), messageId: randomUUID(), title: 'Push bench 1', body: `Bench hub: ${BENCH_TEXT}`, unread: 1 });
  const spec = { targets: fixtures.devices, concurrency: RAW_CONCURRENCY, payload, topic: chatTopic('raw') };
  try {
    await raw.send({ ...spec, total: WARM_UP_MEMBERS });
    await rig.endpoint.waitFor(WARM_UP_MEMBERS);
    await rig.endpoint.take();
    const before = readCpu(cpuPids(rig, [raw.pid]), rig.databaseName);
    const result = await raw.send({ ...spec, total });
    await rig.endpoint.waitFor(total, STALL_MS);
    const use = cpuBetween(before, readCpu(cpuPids(rig, [raw.pid]), rig.databaseName));
    const receipts = await rig.endpoint.take();
    const failures = Object.entries(result.failures).map(([reason, n]) => `${reason} x${n}`);
    return {
      label: `raw loop, ${RAW_CONCURRENCY} in flight`,
      expected: total,
      delivered: receipts.at.length,
      duplicates: 0,
      wallMs: Math.max(...receipts.at) - result.startedAt,
      latencies: [],
      firstMs: Math.min(...receipts.at) - result.startedAt,
      outcomes: { sent: result.sent },
      jobRunMs: [],
      jobWaitMs: [],
      fanOutMs: [],
      probeMs: [],
      ...cpuPerPush(use, receipts.at.length),
      badSamples: receipts.undecryptable + receipts.samples.filter((sample) => JSON.stringify(sample.payload) !== payload).length,
      warnings: failures,
    };
  } finally {
    await raw.close();
  }
}

async function workerPhase(rig: Rig, fixtures: Fixtures, app: App & { url: string }, setup: { workers: number; concurrency: number }): Promise<ThroughputRow> {
  const label = `${setup.workers} worker${setup.workers > 1 ? 's' : ''} x concurrency ${setup.concurrency}`;
  const env = workerEnv(rig, rig.prefixes[0]!, setup.concurrency, '0s');
  const workers: WorkerProcess[] = [];
  try {
    for (let index = 0; index < setup.workers; index++) workers.push(await startWorker(env));
    // Warm-up: connections to PostgreSQL, Redis and the push service, compiled queries.
    await send(app, fixtures.hub, fixtures.warmUpChatId);
    const warm = await rig.endpoint.waitFor(WARM_UP_MEMBERS, STALL_MS);
    if (warm < WARM_UP_MEMBERS) throw new Error(`${label}: warm-up delivered ${warm} of ${WARM_UP_MEMBERS}: ${workers.flatMap((w) => w.warnings).slice(-3).join('\n')}`);
    await sleep(300);
    await rig.endpoint.take();

    const pids = workers.map((worker) => worker.pid);
    const before = readCpu(cpuPids(rig, pids), rig.databaseName);
    const messages = await Promise.all(fixtures.groupChatIds.map((chatId) => send(app, fixtures.hub, chatId)));
    const expected = messages.length * RECIPIENTS;
    await rig.endpoint.waitFor(expected, STALL_MS);
    const use = cpuBetween(before, readCpu(cpuPids(rig, pids), rig.databaseName));
    const receipts = await rig.endpoint.take();
    const probeMs = await probes(rig, fixtures, app);

    const deliveries = messages.flatMap((message) => fixtures.subscriptionIds.map((subscriptionId) => jobIds.deliver({ messageId: message.id, subscriptionId })));
    const jobs = await readJobs(rig.redis, rig.prefixes[0]!, deliveries);
    const fanOuts = await readJobs(rig.redis, rig.prefixes[0]!, messages.map((message) => jobIds.fanOut(message.id)));
    const sentAtByTopic = new Map(messages.map((message) => [chatTopic(message.chatId), message]));
    const firstSend = Math.min(...messages.map((message) => message.sentAt));
    return {
      label,
      expected,
      delivered: receipts.at.length,
      duplicates: receipts.at.length - new Set(Array.from(receipts.device, (device, index) => `${device} ${receipts.topic[index]}`)).size,
      wallMs: Math.max(...receipts.at) - firstSend,
      latencies: Array.from(receipts.at, (at, index) => at - (sentAtByTopic.get(receipts.topic[index]!)?.sentAt ?? Number.NaN)),
      firstMs: Math.min(...receipts.at) - firstSend,
      outcomes: countOutcomes(jobs),
      jobRunMs: jobs.map((job) => job.finishedAt - job.processedAt),
      jobWaitMs: jobs.map((job) => job.processedAt - job.addedAt),
      fanOutMs: fanOuts.map((job) => job.finishedAt - job.processedAt),
      probeMs,
      ...cpuPerPush(use, receipts.at.length),
      badSamples: receipts.undecryptable + badSamples(receipts, sentAtByTopic),
      warnings: workers.flatMap((worker) => worker.warnings),
    };
  } finally {
    const codes = await Promise.all(workers.map((worker) => worker.stop()));
    if (codes.some((code) => code !== 0)) console.log(`${label}: worker exit codes ${codes.join(', ')}`);
  }
}

/** Single messages to one recipient, one at a time: send -> arrival with nothing else queued. */
async function probes(rig: Rig, fixtures: Fixtures, app: App & { url: string }): Promise<number[]> {
  const latencies: number[] = [];
  for (let index = 0; index < PROBES; index++) {
    const message = await send(app, fixtures.hub, fixtures.probeChatId, `probe ${index}`);
    if ((await rig.endpoint.waitFor(1, STALL_MS)) < 1) continue;
    const { at } = await rig.endpoint.take();
    latencies.push(at[0]! - message.sentAt);
  }
  return latencies;
}

/** Decrypted samples whose message is not the one sent to that chat in this phase. */
function badSamples(receipts: Receipts, sentByTopic: Map<string, { id: string; chatId: string }>): number {
  return receipts.samples.filter((sample) => {
    const message = sentByTopic.get(sample.topic);
    const { payload } = sample;
    return !message || payload.messageId !== message.id || payload.chatId !== message.chatId || !String(payload.body).endsWith(BENCH_TEXT) || !(payload.unread >= 1);
  }).length;
}

function workerEnv(rig: Rig, queuePrefix: string, concurrency: number, collapseWindow: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined) env[key] = value;
  return {
    ...env,
    ...rig.env,
    NODE_ENV: 'test',
    // The worker announces itself at info.
    LOG_LEVEL: 'info',
    NODE_EXTRA_CA_CERTS: rig.endpoint.certFile,
    JOB_QUEUE_PREFIX: queuePrefix,
    WORKER_CONCURRENCY: String(concurrency),
    PUSH_COLLAPSE_WINDOW: collapseWindow,
    JWT_SECRET: benchConfig().auth.jwtSecret,
  };
}

/** Processes whose CPU a throughput phase reads; this one (the API) only so that "others" excludes it. */
function cpuPids(rig: Rig, senderPids: number[]): Record<string, number[]> {
  return { sender: senderPids, service: [rig.endpoint.pid], redis: rig.redisPid ? [rig.redisPid] : [], api: [process.pid] };
}

function cpuPerPush(use: CpuUse, pushes: number): Pick<ThroughputRow, 'cpu' | 'hostBusy' | 'othersBusy'> {
  const { sender, service, redis } = use.processes as Record<'sender' | 'service' | 'redis', number>;
  return {
    cpu: { sender: sender / pushes, postgres: use.postgres / pushes, service: service / pushes, redis: redis / pushes },
    hostBusy: use.hostBusy,
    othersBusy: othersShare(use),
  };
}

/** The host's busy share minus what the bench's own processes (and PostgreSQL, Redis) used. */
function othersShare(use: CpuUse): number {
  return othersBusyShare(use.hostBusy, use.wallMs, [...Object.values(use.processes), use.postgres]);
}

function printThroughput(rows: ThroughputRow[]) {
  const raw = rows[0]!;
  const rate = (row: ThroughputRow) => (row.delivered * 1_000) / row.wallMs;
  const headers = ['variant', 'pushes', 'of', 'dup', 'bad', 's', 'pushes/s', 'x raw', 'e2e p50 ms', 'e2e p99 ms', 'first ms', 'idle p50 ms', 'idle max ms', 'job run p50', 'job run p99', 'sender ms/push', 'pg ms/push', 'svc ms/push', 'redis ms/push', 'host %', 'others %'];
  console.log(
    table(
      headers,
      rows.map((row) => [
        row.label,
        row.delivered,
        row.expected,
        row.duplicates,
        row.badSamples,
        fixed(row.wallMs / 1_000, 2),
        fixed(rate(row), 0),
        fixed(rate(row) / rate(raw), 2),
        fixed(percentile(row.latencies, 50), 0),
        fixed(percentile(row.latencies, 99), 0),
        fixed(row.firstMs, 0),
        fixed(percentile(row.probeMs, 50), 0),
        fixed(maxOf(row.probeMs), 0),
        fixed(percentile(row.jobRunMs, 50), 0),
        fixed(percentile(row.jobRunMs, 99), 0),
        fixed(row.cpu.sender, 3),
        fixed(row.cpu.postgres, 3),
        fixed(row.cpu.service, 3),
        fixed(row.cpu.redis, 3),
        fixed(row.hostBusy * 100, 0),
        fixed(row.othersBusy * 100, 0),
      ]),
    ),
  );
  for (const row of rows.slice(1)) {
    const outcomes = Object.entries(row.outcomes).map(([outcome, n]) => `${outcome} ${n}`).join(', ');
    console.log(`${row.label}: delivery jobs ${outcomes}; fan-out job ${row.fanOutMs.map((ms) => fixed(ms, 0)).join('/')} ms; queue wait p50 ${fixed(percentile(row.jobWaitMs, 50), 0)} ms`);
  }
  for (const row of rows) if (row.warnings.length > 0) console.log(`${row.label}: ${row.warnings.length} warnings, first: ${row.warnings[0]!.slice(0, 300)}`);
  const collapsed = rows.reduce((sum, row) => sum + (row.outcomes.collapsed ?? 0), 0);
  console.log(`collapsed by the product: ${collapsed} (one message per chat per phase, window 0s: none expected)`);
  for (const row of rows.slice(1)) console.log(`${row.label} / raw: pushes/s x${fixed(rate(row) / rate(raw), 2)} (${fixed(rate(row), 0)} vs ${fixed(rate(raw), 0)})`);
  // What the rates would be with the cores to ourselves: the machine is shared, CPU per push is steadier than pushes/s.
  const cores = availableParallelism();
  for (const row of rows) {
    const { sender, postgres, service, redis } = row.cpu;
    const total = sender + postgres + service + redis;
    console.log(
      `${row.label}: CPU per push sender ${fixed(sender, 3)} + pg ${fixed(postgres, 3)} + svc ${fixed(service, 3)} + redis ${fixed(redis, 3)} = ${fixed(total, 3)} ms ` +
        `-> ${cores} cores allow ~${fixed((cores * 1_000) / total, 0)}/s, the sender alone at one full core ~${fixed(1_000 / sender, 0)}/s`,
    );
  }
}

/**
 * Counts what one delivery and one fan-out cost in SQL statements, by running the product's job
 * functions in this process on the API's counting Prisma client, with a push sender that does not
 * send (the jobs' database work only).
 */
async function countJobStatements(app: App, fixtures: Fixtures): Promise<string[]> {
  const statements = { issued: 0 };
  const notified = new Map<string, ReturnType<typeof loadNotifiedMessage>>();
  const counting = createPrisma(app.databaseUrl, { onQuery: () => void statements.issued++ });
  try {
    const { services } = app;
    const deps: NotificationDeps = {
      prisma: counting,
      cipher: services.cipher,
      presence: services.presence,
      logger: services.logger,
      send: async () => ({ kind: 'sent', statusCode: 201 }),
      enqueueDeliveries: async () => {},
      // Cached per message, as the product's notifications service does.
      notifiedMessage: (id) => {
        if (!notified.has(id)) notified.set(id, loadNotifiedMessage({ prisma: counting, cipher: services.cipher }, id));
        return notified.get(id)!;
      },
    };
    const message = await counting.message.findFirstOrThrow({ where: { chatId: fixtures.groupChatIds[0]! }, orderBy: { seq: 'desc' } });
    await deliver(deps, { messageId: message.id, subscriptionId: fixtures.subscriptionIds[0]! });
    const samples = 50;
    statements.issued = 0;
    const started = performance.now();
    for (let index = 0; index < samples; index++) await deliver(deps, { messageId: message.id, subscriptionId: fixtures.subscriptionIds[index]! });
    const deliverMs = (performance.now() - started) / samples;
    const perDelivery = statements.issued / samples;
    statements.issued = 0;
    const fanStarted = performance.now();
    const recipients = await fanOut(deps, { messageId: message.id });
    const fanOutMs = performance.now() - fanStarted;
    return [
      `job statements (product job code in this process, Prisma query log, no push sent): deliver = ${fixed(perDelivery, 1)} SQL statements, ` +
        `${fixed(deliverMs, 2)} ms each one at a time; fan-out to ${recipients} devices = ${statements.issued} statements, ${fixed(fanOutMs, 1)} ms (enqueue not included)`,
    ];
  } finally {
    await counting.$disconnect();
  }
}

// ---- enqueue cost ----

type EnqueueVariant = 'off' | 'on' | 'on + worker';

interface EnqueueRow {
  label: string;
  variant: EnqueueVariant;
  summary: LoadSummary;
  statements: number;
  use: CpuUse;
  /** Messages the run wrote (warm-up and tail included), and jobs under its queue prefix. */
  messages: number;
  queued: number;
}

async function enqueueCost(rig: Rig, fixtures: Fixtures) {
  const colocated = process.env.BENCH_PUSH_COLOCATED === '1';
  console.log(`enqueue cost: sendMessage, ${SENDERS} senders in a closed loop (bench/graphql-load.ts child process), each in a direct chat with an offline recipient`);
  console.log(`  that has a push subscription; ${WARM_UP_MS / 1_000} s warm-up (the first run ${FIRST_WARM_UP_MS / 1_000} s) + ${DURATION_MS / 1_000} s measured; a new API instance per run`);
  console.log(`  in this process, REDIS_URL set; off and on alternate, ${ENQUEUE_ROUNDS} rounds (back-to-back identical runs drift by 20% and more on this shared machine)`);
  console.log(`  "on": the API writes the outbox row and its relay enqueues fan-out jobs; no worker runs (the jobs wait in Redis: "jobs in Redis")`);
  if (colocated) console.log(`  "on + worker": one worker (concurrency 16, PUSH_COLLAPSE_WINDOW 2s as shipped) runs fan-out and delivery beside the API on the same cores`);
  console.log(`  stmts/ok: the API's SQL statements per ok send (relay included); cpu ms/ok: api = this process, pg = bench database backends, worker = worker process,`);
  console.log(`  redis = redis-server (shared); others % = host busy share not used by api, load client, pg, worker or redis`);
  const load = startLoadProcess();
  const rows: EnqueueRow[] = [];
  try {
    for (let round = 1; round <= ENQUEUE_ROUNDS; round++) {
      for (const variant of ['off', 'on'] as const) rows.push(await enqueueRun(rig, fixtures, load, variant, round));
    }
    if (colocated) rows.push(await enqueueRun(rig, fixtures, load, 'on + worker', 1));
  } finally {
    await load.close();
  }
  const headers = ['run', 'ok', 'errors', 'ok/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'stmts/ok', 'api ms/ok', 'pg ms/ok', 'worker ms/ok', 'redis ms/ok', 'host %', 'others %', 'messages', 'jobs in Redis'];
  console.log(
    table(
      headers,
      rows.map((row) => [
        row.label,
        okOf(row),
        totalOf(row.summary.codes) - okOf(row),
        fixed(sendRate(row), 0),
        fixed(row.summary.latencyMs.p50, 1),
        fixed(row.summary.latencyMs.p95, 1),
        fixed(row.summary.latencyMs.p99, 1),
        fixed(row.summary.latencyMs.max, 0),
        fixed(row.statements / okOf(row), 2),
        fixed(row.use.processes.api! / okOf(row), 3),
        fixed(row.use.postgres / okOf(row), 3),
        fixed((row.use.processes.worker ?? Number.NaN) / okOf(row), 3),
        fixed(row.use.processes.redis! / okOf(row), 3),
        fixed(row.use.hostBusy * 100, 0),
        othersOf(row),
        row.messages,
        row.queued,
      ]),
    ),
  );
  const off = pooled(rows.filter((row) => row.variant === 'off'));
  for (const variant of ['on', 'on + worker'] as const) {
    const runs = rows.filter((row) => row.variant === variant);
    if (runs.length === 0) continue;
    const on = pooled(runs);
    console.log(
      `push ${variant} / push off (${runs.length > 1 ? `pooled over ${runs.length} rounds: ok summed, p50/p99/CPU averaged` : 'one run against the pooled off runs'}): ` +
        `ok/s x${fixed(on.rate / off.rate, 2)} (${fixed(on.rate, 0)} vs ${fixed(off.rate, 0)}), p50 x${fixed(on.p50 / off.p50, 2)}, ` +
        `p99 x${fixed(on.p99 / off.p99, 2)} (${fixed(on.p99, 1)} vs ${fixed(off.p99, 1)} ms), api CPU per send x${fixed(on.apiMs / off.apiMs, 2)}, pg CPU per send x${fixed(on.pgMs / off.pgMs, 2)}`,
    );
  }
  const pairs = rows.filter((row) => row.variant === 'on').map((on, index) => [on, rows.filter((row) => row.variant === 'off')[index]!] as const);
  console.log(
    `per round, on / off: ${pairs
      .map(([on, offRun], index) => `#${index + 1} ok/s x${fixed(sendRate(on) / sendRate(offRun), 2)} p99 x${fixed(on.summary.latencyMs.p99 / offRun.summary.latencyMs.p99, 2)} (others ${othersOf(on)}% / ${othersOf(offRun)}%)`)
      .join('; ')}`,
  );
}

const okOf = (row: EnqueueRow) => countOf(row.summary.codes, 'OK');
// The load process is ours too.
const othersOf = (row: EnqueueRow) => fixed(othersShare({ ...row.use, processes: { ...row.use.processes, client: row.summary.clientCpuMs } }) * 100, 0);
const sendRate = (row: EnqueueRow) => (okOf(row) * 1_000) / row.summary.windowMs;

function pooled(rows: EnqueueRow[]) {
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  const ok = rows.reduce((sum, row) => sum + okOf(row), 0);
  return {
    rate: (ok * 1_000) / rows.reduce((sum, row) => sum + row.summary.windowMs, 0),
    p50: mean(rows.map((row) => row.summary.latencyMs.p50)),
    p99: mean(rows.map((row) => row.summary.latencyMs.p99)),
    apiMs: rows.reduce((sum, row) => sum + row.use.processes.api!, 0) / ok,
    pgMs: rows.reduce((sum, row) => sum + row.use.postgres, 0) / ok,
  };
}

async function enqueueRun(rig: Rig, fixtures: Fixtures, load: LoadProcess, variant: EnqueueVariant, round: number): Promise<EnqueueRow> {
  const label = `push ${variant} #${round}`;
  const tag = label.replace(/\W+/g, '-');
  // A queue prefix per run, so "jobs in Redis" counts this run's jobs only.
  const prefix = `${rig.prefixes[0]!.replace(/-tp$/, '')}-${tag}`;
  rig.prefixes.push(prefix);
  const statements = { issued: 0 };
  const app = await startApp(rig, prefix, variant !== 'off', statements);
  const worker = variant === 'on + worker' ? await startWorker(workerEnv(rig, prefix, 16, '2s')) : undefined;
  try {
    await sleep(1_000);
    const senders = fixtures.senders.map((sender, index) => ({
      token: sender.accessToken,
      body: JSON.stringify({
        query: SEND_MESSAGE_RECEIPT,
        variables: { input: { chatId: fixtures.directChatIds[index]!, kind: 'TEXT', text: BENCH_TEXT, clientMessageId: `${tag}-${index}-${SEQUENCE_PLACEHOLDER}` } },
      }),
    }));
    const pids = () => ({ api: [process.pid], redis: rig.redisPid ? [rig.redisPid] : [], ...(worker ? { worker: [worker.pid] } : {}) });
    let before: ReturnType<typeof readCpu> | undefined;
    let use: CpuUse | undefined;
    let issuedAtStart = 0;
    let issued = 0;
    const summary = await load.run(
      { url: app.url, senders, warmUpMs: round === 1 && variant === 'off' ? FIRST_WARM_UP_MS : WARM_UP_MS, durationMs: DURATION_MS },
      {
        onStart: () => {
          issuedAtStart = statements.issued;
          before = readCpu(pids(), rig.databaseName);
        },
        onEnd: () => {
          issued = statements.issued - issuedAtStart;
          use = cpuBetween(before!, readCpu(pids(), rig.databaseName));
        },
      },
    );
    // The relay's last batch, so every message of the run is in the queue when it is counted.
    for (let waited = 0; waited < 5_000 && (await app.services.prisma.notificationOutbox.count()) > 0; waited += 100) await sleep(100);
    const messages = await app.services.prisma.message.count({ where: { clientMessageId: { startsWith: `${tag}-` } } });
    const queued = variant === 'off' ? 0 : await queuedJobs(rig.redisUrl, prefix);
    return { label, variant, summary, statements: issued, use: use!, messages, queued };
  } finally {
    await worker?.stop();
    await app.stop();
  }
}

/** Jobs waiting, delayed or done under the prefix: shows the enqueue path really ran. */
async function queuedJobs(redisUrl: string, prefix: string): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  const queue = new Queue(QUEUE_NAME, { connection, prefix });
  try {
    const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await queue.close();
    await connection.quit();
  }
}
