// Fan-out: one sender into a 1,000-member group whose members all subscribe to messageEvents(chatId),
// each over its own graphql-ws connection. Messages go in through GraphQL over HTTP (sendMessage);
// every delivery is timed from the moment the sender started the request to the moment a
// subscriber's client handed it over. Then the same deliveries by a bare ws broadcast server
// (bench/ws-bare.ts) with the same clients and sender, in the same run: the ceiling on this machine.
//
// Three ways of sending, each for PHASE_MS: paced at the target rate with one request at a time
// (the targets' case), sequential as fast as answers come (the most one sender gets through), and
// open loop at the target rate, where requests overlap whenever answers are slow (as with several
// senders): overlapping sends may publish their events out of position order.
//
// Both servers run in this process; subscribers and the sender are child processes
// (bench/ws-client.mjs), so this process's CPU is the server's.
import { availableParallelism } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { hostBusyShare, sampleHostCpu } from './host-cpu.ts';
import { describeCounts, type CodeCounts } from './outcomes.ts';
import { startFanoutServers, watchEventLoop } from './fanout-servers.ts';
import type { BenchContext } from './setup.ts';
import { fixed, sleep, table } from './stats.ts';
import { startBareBroadcastServer } from './ws-bare.ts';
import { chunk, sourceAddress, startClientProcess, type ChildRpc } from './ws-clients.ts';
import { createBenchUsers, createGroupChat, type BenchUser } from './ws-fixtures.ts';

const SUBSCRIBERS = 1_000;
/** Subscribers are split over this many client processes (one core's worth of parsing can be the limit). */
const SUBSCRIBER_PROCESSES = 2;
/** Issue #20's targets. */
const TARGET_DELIVERIES_PER_S = 25_000;
const TARGET_P99_MS = 50;
const TARGET_RATIO = 0.4;
/** The paced and open-loop phases offer exactly the target: 20 messages/s x 1,000 subscribers. */
const RATE = TARGET_DELIVERIES_PER_S / SUBSCRIBERS;
const PHASE_MS = 6_000;
const WARM_UP_MESSAGES = 5;
const MAX_PROBES = 10;
/** After the last send, wait this long at most for the remaining deliveries. */
const DRAIN_TIMEOUT_MS = 15_000;
const DRAIN_IDLE_MS = 3_000;
const IDLE_WAIT_MAX_MS = 30_000;
/** Text of each message, padded to a typical short message. */
const TEXT_BYTES = 100;

const PHASES: Array<[string, SendPlan]> = [
  [`paced ${RATE}/s`, { mode: 'paced', rate: RATE, durationMs: PHASE_MS }],
  ['sequential', { mode: 'sequential', durationMs: PHASE_MS }],
  [`open ${RATE}/s`, { mode: 'open', rate: RATE, durationMs: PHASE_MS }],
];

const MESSAGE_EVENTS = `subscription ($chatId: ID) { messageEvents(chatId: $chatId) {
  type chatId seq message { id seq text createdAt sender { id displayName } } } }`;

interface Target {
  label: string;
  /** The sender posts here. */
  httpUrl: string;
  /** Subscriber process i connects to wsUrls[i % length] (http(s) URLs); default httpUrl. */
  wsUrls?: string[];
  /** Labels of the server processes and their CPU so far (µs); default this process alone. */
  processes?: string[];
  cpuMicros?: () => Promise<number[]>;
  /** Body the sender posts: a GraphQL sendMessage, or the bare server's `{ text }`. */
  format: 'graphql' | 'bare';
}

interface Rig {
  /** Subscriber processes; rig.users are split over them, all subscribed. */
  subscribers: ChildRpc[];
  sender: ChildRpc;
  users: BenchUser[];
  chatId: string;
  connectConcurrency?: number;
  subscribeBatch?: number;
}

export interface PhaseResult {
  server: string;
  mode: string;
  sent: number;
  sendFailures: CodeCounts;
  delivered: number;
  expected: number;
  deliveriesPerS: number;
  latency: { p50: number; p90: number; p99: number; max: number };
  answerP50Ms: number;
  answerP99Ms: number;
  /** The server processes' CPU as a share of one core, summed. */
  serverCpu: number;
  /** Each server process: its label, CPU as a share of one core, and µs per delivery of all. */
  processCpu: Array<{ label: string; share: number; perDeliveryUs: number }>;
  /** This process's (the sender's instance's) longest and p99 event-loop hold, ms. */
  loopDelay: { maxMs: number; p99Ms: number };
  /** Server CPU per delivery: what throughput would be on cores of its own, and less skewed by other load. */
  cpuPerDeliveryUs: number;
  loopBusy: number;
  hostBusy: number;
  messageBytes: number;
  errors: number;
  firstError?: string;
}

export async function runFanout({ databaseUrl }: BenchContext): Promise<void> {
  printLegend();
  printResults(await runFanoutShape(databaseUrl, { subscribers: SUBSCRIBERS, subscriberProcesses: SUBSCRIBER_PROCESSES, phases: PHASES }));
}

export interface FanoutShape {
  subscribers: number;
  subscriberProcesses: number;
  phases: Array<[string, SendPlan]>;
  /** Handshakes each subscriber process keeps in flight. Default 200 (ws-client.mjs). */
  connectConcurrency?: number;
  /** Subscriptions each subscriber process starts per 100 ms. Default: all at once. */
  subscribeBatch?: number;
  /** Our app's server processes: 2 splits the subscriber processes over this one and a child, both on `redisUrl`. Default 1. */
  serverProcesses?: number;
  /** Redis for our app (the cross-instance event bus). Default: none (the in-process bus). */
  redisUrl?: string;
}

function printLegend() {
  console.log(`${SUBSCRIBERS} members of one GROUP chat, each subscribed to messageEvents(chatId) on its own graphql-ws connection;`);
  console.log(`one sender (member 1, subscribed too) posts sendMessage over HTTP with a ${TEXT_BYTES}-byte text carrying its send time;`);
  console.log(`latency = send start (sender) -> subscriber's client delivers it, on the shared monotonic clock`);
  console.log(`phases of ${PHASE_MS / 1_000} s: paced = ${RATE} messages/s (${TARGET_DELIVERIES_PER_S} deliveries/s offered), one request at a time;`);
  console.log(`  sequential = next request as soon as the previous is answered; open = ${RATE}/s on schedule, requests overlap if answers are slow`);
  console.log(`deliveries/s = deliveries / (first send -> last delivery); missing deliveries are those not in ${DRAIN_TIMEOUT_MS / 1_000} s after the last send;`);
  console.log('answer = the sender\'s HTTP round trip for one message');
  console.log(`processes: server (this one) | ${SUBSCRIBER_PROCESSES} subscriber processes x ${SUBSCRIBERS / SUBSCRIBER_PROCESSES} clients | 1 sender process | PostgreSQL;`);
  console.log(`  all share ${availableParallelism()} cores (nothing pinned); server cpu = this process's CPU as % of one core (includes its worker threads);`);
  console.log('  loop busy = event-loop utilization (includes time the process waited for a core); loop hold max = its longest stretch without a turn; host = all cores, anyone\'s use');
  console.log('');
}

/**
 * One group of `shape.subscribers` members, all subscribed, each on its own connection; every phase
 * against the app, then against the bare ws broadcast server with the same clients and sender.
 */
export async function runFanoutShape(databaseUrl: string, shape: FanoutShape): Promise<PhaseResult[]> {
  const servers = await startFanoutServers(databaseUrl, { processes: shape.serverProcesses, redisUrl: shape.redisUrl });
  const { app } = servers;
  let appRunning = true;
  const subscribers = Array.from({ length: shape.subscriberProcesses }, (_, index) => startClientProcess(sourceAddress(index)));
  const sender = startClientProcess(sourceAddress(shape.subscriberProcesses));
  const results: PhaseResult[] = [];
  try {
    const users = await createBenchUsers(app, shape.subscribers, 'fanout');
    const chatId = await createGroupChat(app, users.map((user) => user.userId), 'Fan-out bench');
    const rig: Rig = { subscribers, sender, users, chatId, connectConcurrency: shape.connectConcurrency, subscribeBatch: shape.subscribeBatch };

    const ours: Target = { label: 'kocmoc', httpUrl: servers.senderUrl, wsUrls: servers.urls, processes: servers.labels, cpuMicros: servers.cpuMicros, format: 'graphql' };
    results.push(...(await runTarget(rig, ours, shape.phases)));
    // Stop ours before the bare run, so its idle connections and presence work cannot disturb it.
    await servers.stop();
    appRunning = false;

    const bare = await startBareBroadcastServer({ chatId, sender: { id: users[0]!.userId, displayName: 'Bench sender' } });
    try {
      results.push(...(await runTarget(rig, { label: 'bare ws', httpUrl: bare.url, format: 'bare' }, shape.phases)));
    } finally {
      await bare.stop();
    }

    return results;
  } finally {
    await Promise.all([...subscribers, sender].map((child) => child.stop()));
    if (appRunning) await servers.stop();
  }
}

/** Connects and subscribes everyone, warms up, runs every phase, disconnects. */
async function runTarget(rig: Rig, target: Target, phases: Array<[string, SendPlan]>): Promise<PhaseResult[]> {
  const wsUrls = (target.wsUrls ?? [target.httpUrl]).map((url) => url.replace(/^http/, 'ws'));
  const subscribers = rig.users.length;
  const parts = chunk(rig.users.map((user) => user.accessToken), Math.ceil(subscribers / rig.subscribers.length));
  const connected = await Promise.all(
    rig.subscribers.map((child, index) => child.call('connect', { url: wsUrls[index % wsUrls.length], tokens: parts[index], concurrency: rig.connectConcurrency })),
  );
  const opened = connected.reduce((total, result) => total + result.opened, 0);
  if (opened !== subscribers) throw new Error(`${target.label}: only ${opened} of ${subscribers} connections opened: ${JSON.stringify(connected)}`);
  await Promise.all(rig.subscribers.map((child) => child.call('subscribe', { query: MESSAGE_EVENTS, variables: { chatId: rig.chatId }, ...(rig.subscribeBatch ? { batch: rig.subscribeBatch, pauseMs: 100 } : {}) })));

  // Subscriptions go live asynchronously: probe until one message reaches every subscriber, then
  // a few more messages, all of which must arrive, warm up both ends.
  for (let attempt = 1; ; attempt++) {
    const phase = `probe-${attempt}`;
    await sendPhase(rig, target, phase, { mode: 'sequential', durationMs: 30_000, count: 1 });
    const reached = await drain(rig, phase, subscribers);
    await Promise.all(rig.subscribers.map((child) => child.call('take', { phase })));
    if (reached === subscribers) break;
    if (attempt === MAX_PROBES) throw new Error(`${target.label}: after ${MAX_PROBES} probes, the last reached ${reached} of ${subscribers} subscribers`);
  }
  await sendPhase(rig, target, 'warm-up', { mode: 'sequential', durationMs: 30_000, count: WARM_UP_MESSAGES });
  const warm = await drain(rig, 'warm-up', WARM_UP_MESSAGES * subscribers);
  if (warm < WARM_UP_MESSAGES * subscribers) throw new Error(`${target.label}: warm-up delivered ${warm} of ${WARM_UP_MESSAGES * subscribers}`);
  await Promise.all(rig.subscribers.map((child) => child.call('take', { phase: 'warm-up' })));
  await sleep(500);

  const results: PhaseResult[] = [];
  for (const [label, plan] of phases) {
    results.push(await measurePhase(rig, target, label, plan));
    await untilServerIdle();
  }
  await Promise.all(rig.subscribers.map((child) => child.call('closeAll')));
  await untilServerIdle();
  return results;
}

/**
 * Waits until this process's event loop is nearly idle: a phase that fell behind leaves work
 * queued on the server (even for subscribers that left), which must not spill into the next
 * phase, nor run into a stopped database pool.
 */
async function untilServerIdle() {
  const deadline = performance.now() + IDLE_WAIT_MAX_MS;
  do {
    const before = performance.eventLoopUtilization();
    await sleep(500);
    if (performance.eventLoopUtilization(before).utilization < 0.05) return;
  } while (performance.now() < deadline);
}

interface SendPlan {
  mode: 'paced' | 'sequential' | 'open';
  rate?: number;
  durationMs: number;
  /** Stop after this many messages even if time is left. */
  count?: number;
}

interface SendResult {
  sent: number;
  startedNs: bigint;
  finishedNs: bigint;
  answerMs: Float64Array;
  failures: Record<string, number>;
}

async function sendPhase(rig: Rig, target: Target, phase: string, plan: SendPlan): Promise<SendResult> {
  const sender = rig.users[0]!;
  return rig.sender.call('send', { url: target.httpUrl, token: sender.accessToken, chatId: rig.chatId, format: target.format, phase, textBytes: TEXT_BYTES, ...plan });
}

/** Waits until `expected` deliveries of the phase arrived, or they stop coming. Returns how many did. */
async function drain(rig: Rig, phase: string, expected: number): Promise<number> {
  const deadline = performance.now() + DRAIN_TIMEOUT_MS;
  let delivered = 0;
  let lastProgress = performance.now();
  for (;;) {
    const counts = await Promise.all(rig.subscribers.map((child) => child.call<{ delivered: number }>('count', { phase })));
    const now = counts.reduce((total, count) => total + count.delivered, 0);
    if (now > delivered) lastProgress = performance.now();
    delivered = now;
    if (delivered >= expected || performance.now() > deadline || performance.now() - lastProgress > DRAIN_IDLE_MS) return delivered;
    await sleep(100);
  }
}

async function measurePhase(rig: Rig, target: Target, mode: string, plan: SendPlan): Promise<PhaseResult> {
  const phase = `${target.label}/${mode}`;
  const sampleCpu = target.cpuMicros ?? (async () => (({ user, system }) => [user + system])(process.cpuUsage()));
  const cpuBefore = await sampleCpu();
  const loop = watchEventLoop();
  const hostBefore = sampleHostCpu();
  const loopBefore: EventLoopUtilization = performance.eventLoopUtilization();
  const started = performance.now();

  const sent = await sendPhase(rig, target, phase, plan);
  const expected = sent.sent * rig.users.length;
  await drain(rig, phase, expected);

  const wallMs = performance.now() - started;
  const loopDelay = loop.stop();
  const cpuMicros = (await sampleCpu()).map((micros, index) => micros - cpuBefore[index]!);
  const cpuTotal = cpuMicros.reduce((total, micros) => total + micros, 0);
  const hostBusy = hostBusyShare(hostBefore, sampleHostCpu());
  const loopBusy = performance.eventLoopUtilization(loopBefore).utilization;
  const taken = await Promise.all(
    rig.subscribers.map((child) =>
      child.call<{ latencies: Float64Array; lastNs: bigint; errors: number; firstError?: string; messageBytes: number }>('take', { phase }),
    ),
  );
  const latencies = concat(taken.map((part) => part.latencies));
  const lastNs = taken.reduce((latest, part) => (part.lastNs > latest ? part.lastNs : latest), 0n);
  // From the first send to the last delivery: the rate subscribers were actually served at.
  const windowS = Number(lastNs - sent.startedNs) / 1e9;
  return {
    server: target.label,
    mode,
    sent: sent.sent,
    sendFailures: sent.failures,
    delivered: latencies.length,
    expected,
    deliveriesPerS: latencies.length / windowS,
    latency: percentiles(latencies),
    answerP50Ms: percentiles(sent.answerMs).p50,
    answerP99Ms: percentiles(sent.answerMs).p99,
    serverCpu: cpuTotal / 1_000 / wallMs,
    cpuPerDeliveryUs: cpuTotal / latencies.length,
    processCpu: cpuMicros.map((micros, index) => ({
      label: target.processes?.[index] ?? 'this process',
      share: micros / 1_000 / wallMs,
      perDeliveryUs: micros / latencies.length,
    })),
    loopDelay,
    loopBusy,
    hostBusy,
    messageBytes: Math.max(...taken.map((part) => part.messageBytes)),
    errors: Math.max(...taken.map((part) => part.errors)),
    firstError: taken.find((part) => part.firstError)?.firstError,
  };
}

export function printPhases(results: PhaseResult[]) {
  console.log(
    table(
      ['server', 'phase', 'sent', 'send errors', 'delivered', 'expected', 'deliveries/s', 'lat p50 ms', 'lat p90 ms', 'lat p99 ms', 'lat max ms', 'answer p50 ms', 'answer p99 ms', 'server cpu %', 'cpu µs/delivery', 'loop busy %', 'loop hold max ms', 'host %', 'msg bytes'],
      results.map((r) => [
        r.server,
        r.mode,
        r.sent,
        describeCounts(r.sendFailures) || '0',
        r.delivered,
        r.expected,
        fixed(r.deliveriesPerS, 0),
        fixed(r.latency.p50),
        fixed(r.latency.p90),
        fixed(r.latency.p99),
        fixed(r.latency.max),
        fixed(r.answerP50Ms),
        fixed(r.answerP99Ms),
        fixed(r.serverCpu * 100, 0),
        fixed(r.cpuPerDeliveryUs),
        fixed(r.loopBusy * 100, 0),
        fixed(r.loopDelay.maxMs, 0),
        fixed(r.hostBusy * 100, 0),
        r.messageBytes,
      ]),
    ),
  );
  for (const r of results) if (r.errors > 0) console.log(`${r.server} ${r.mode}: ${r.errors} subscription errors, first: ${r.firstError}`);
  console.log('');
}

function printResults(results: PhaseResult[]) {
  printPhases(results);

  const find = (server: string, mode: string) => results.find((r) => r.server === server && r.mode.startsWith(mode))!;
  const paced = find('kocmoc', 'paced');
  const oursMax = find('kocmoc', 'sequential');
  const bareMax = find('bare ws', 'sequential');
  const open = find('kocmoc', 'open');
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
  const complete = (r: PhaseResult) => r.delivered === r.expected;
  const best = Math.max(paced.deliveriesPerS, oursMax.deliveriesPerS);
  const ratio = oursMax.deliveriesPerS / bareMax.deliveriesPerS;
  // Paced sending cannot exceed the offered rate; 2% below it is still keeping up (the window includes the last delivery's latency).
  console.log(
    `target >= ${TARGET_DELIVERIES_PER_S} deliveries/s: ${verdict(best >= TARGET_DELIVERIES_PER_S * 0.98)} ` +
      `(paced: ${fixed(paced.deliveriesPerS, 0)}/s; sequential: ${fixed(oursMax.deliveriesPerS, 0)}/s)`,
  );
  console.log(
    `target p99 < ${TARGET_P99_MS} ms at ${RATE} messages/s x ${SUBSCRIBERS} subscribers (paced): ${verdict(paced.latency.p99 < TARGET_P99_MS && complete(paced))} ` +
      `(${fixed(paced.latency.p99)} ms, ${paced.delivered} of ${paced.expected} delivered)`,
  );
  console.log(
    `target ours/bare >= ${TARGET_RATIO} (sequential deliveries/s): ${verdict(ratio >= TARGET_RATIO)} ` +
      `(${fixed(oursMax.deliveriesPerS, 0)} / ${fixed(bareMax.deliveriesPerS, 0)} = ${fixed(ratio, 2)})`,
  );
  console.log(
    `server CPU per delivery, sequential: ${fixed(oursMax.cpuPerDeliveryUs)} µs ours vs ${fixed(bareMax.cpuPerDeliveryUs)} µs bare ` +
      `(bare/ours = ${fixed(bareMax.cpuPerDeliveryUs / oursMax.cpuPerDeliveryUs, 2)}: the ratio on an otherwise idle machine, were the server CPU-bound)`,
  );
  console.log(
    `open loop at the same ${RATE}/s: ${fixed(open.deliveriesPerS, 0)} deliveries/s, p99 ${fixed(open.latency.p99)} ms, ` +
      `${open.delivered} of ${open.expected} delivered (ours) vs p99 ${fixed(find('bare ws', 'open').latency.p99)} ms (bare)`,
  );
}

function concat(parts: Float64Array[]): Float64Array {
  const all = new Float64Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Nearest-rank percentiles of many values at once (one sort; typed arrays sort numerically). */
function percentiles(values: Float64Array) {
  const sorted = Float64Array.from(values).sort();
  const at = (p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!);
  return { p50: at(50), p90: at(90), p99: at(99), max: at(100) };
}
