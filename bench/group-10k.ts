// A 10,000-member group (a public channel's shape): every member subscribed to messageEvents(chatId)
// on its own graphql-ws connection, one message a second from one sender. The targets: every message
// reaches all 10,000 with p99 < 500 ms, and sending costs the sender < 20 ms p99 (the fan-out runs
// after the sender's request has answered, and yields to other requests while it runs). Beside it,
// in the same run, the bare ws broadcast server (bench/ws-bare.ts) with the same clients and sender.
//
// Ours runs as two server processes on the bench PostgreSQL and Redis (REDIS_URL, the cross-instance
// event bus): instance A in this process, which the sender posts to, and instance B in a child, 5,000
// subscriber sockets on each (one process's open-file limit, 20,000 here, would hold them all, but one
// message to 10,000 costs one event loop more than 500 ms). The bare server stays one process. The
// clients are four child processes of 2,500 sockets each, from four source addresses, alternating A, B.
//
// GROUP_BENCH_MEMBERS scales it down for a quick try on a shared machine (default 10,000);
// GROUP_BENCH_SUBSCRIBE_BATCH sets how many subscriptions each client process starts per 100 ms
// (default 100; 0 starts them all at once).
import { availableParallelism } from 'node:os';
import { printPhases, runFanoutShape } from './fanout.ts';
import { benchRedisUrl, type BenchContext } from './setup.ts';
import { fixed } from './stats.ts';
import { openFileLimit } from './ws-clients.ts';

const MEMBERS = Number(process.env.GROUP_BENCH_MEMBERS ?? 10_000);
/** Subscriptions each client process starts per 100 ms; 0: all at once. */
const SUBSCRIBE_BATCH = Number(process.env.GROUP_BENCH_SUBSCRIBE_BATCH ?? 100);
const SERVER_PROCESSES = 2;
const CLIENT_PROCESSES = 4;
const MESSAGES = 10;
const TARGET_DELIVERY_P99_MS = 500;
const TARGET_SENDER_P99_MS = 20;

export async function runGroup10k({ databaseUrl }: BenchContext): Promise<void> {
  const redisUrl = benchRedisUrl();
  console.log(`${MEMBERS} members of one GROUP chat, each subscribed to messageEvents(chatId) on its own graphql-ws connection;`);
  console.log(`ours: ${SERVER_PROCESSES} server processes on Redis (${redisUrl}), ${MEMBERS / SERVER_PROCESSES} subscriber sockets each; open-file limit ${openFileLimit()} per process`);
  console.log('  the sender posts over HTTP to instance A (this process); instance B is a child process; bare ws: one process (this one) holds all sockets');
  console.log(`one sender (member 1) posts ${MESSAGES} messages at 1/s; ${CLIENT_PROCESSES} client processes x ${MEMBERS / CLIENT_PROCESSES} sockets; ${availableParallelism()} cores shared by all`);
  console.log('latency = send start -> a subscriber\'s client has it (over all members); answer = the sender\'s HTTP round trip (its cost of sending into the group)');
  console.log('');
  const results = await runFanoutShape(databaseUrl, {
    subscribers: MEMBERS,
    subscriberProcesses: CLIENT_PROCESSES,
    serverProcesses: SERVER_PROCESSES,
    redisUrl,
    // 200 handshakes in flight in all: more overflowed the listen backlog on a busy 2-core machine.
    connectConcurrency: 50,
    // Paced subscriptions, as a client population reconnecting after a deploy spreads out too;
    // GROUP_BENCH_SUBSCRIBE_BATCH=0 starts them all at once (a subscription storm on one chat).
    subscribeBatch: SUBSCRIBE_BATCH || undefined,
    phases: [['paced 1/s', { mode: 'paced', rate: 1, durationMs: MESSAGES * 1_000, count: MESSAGES }]],
  });
  printPhases(results);
  const ours = results.find((r) => r.server === 'kocmoc')!;
  const bare = results.find((r) => r.server === 'bare ws')!;
  for (const process of ours.processCpu) {
    console.log(`ours ${process.label}: ${fixed(process.share * 100, 0)} % of one core, ${fixed(process.perDeliveryUs)} µs per delivery of all ${MEMBERS}`);
  }
  console.log(`sender's instance A: longest event-loop hold ${fixed(ours.loopDelay.maxMs, 0)} ms, p99 ${fixed(ours.loopDelay.p99Ms, 0)} ms (bare ws: ${fixed(bare.loopDelay.maxMs, 0)} / ${fixed(bare.loopDelay.p99Ms, 0)} ms)`);
  console.log('');
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
  console.log(['target', 'wanted', 'achieved (ours)', 'verdict', 'bare ws'].join(' | '));
  console.log(
    [
      `every message reaches all ${MEMBERS}, p99`,
      `< ${TARGET_DELIVERY_P99_MS} ms, ${ours.expected} of ${ours.expected}`,
      `${fixed(ours.latency.p99)} ms, ${ours.delivered} of ${ours.expected}`,
      verdict(ours.delivered === ours.expected && ours.latency.p99 < TARGET_DELIVERY_P99_MS),
      `${fixed(bare.latency.p99)} ms, ${bare.delivered} of ${bare.expected}`,
    ].join(' | '),
  );
  console.log(
    [
      "sender's cost (HTTP answer), p99",
      `< ${TARGET_SENDER_P99_MS} ms`,
      `${fixed(ours.answerP99Ms)} ms (p50 ${fixed(ours.answerP50Ms)})`,
      verdict(ours.answerP99Ms < TARGET_SENDER_P99_MS),
      `${fixed(bare.answerP99Ms)} ms (p50 ${fixed(bare.answerP50Ms)})`,
    ].join(' | '),
  );
  console.log(`server CPU per delivery: ${fixed(ours.cpuPerDeliveryUs)} µs ours (both processes) vs ${fixed(bare.cpuPerDeliveryUs)} µs bare; one message to ${MEMBERS} = ${fixed((ours.cpuPerDeliveryUs * MEMBERS) / 1_000)} ms of server CPU`);
}
