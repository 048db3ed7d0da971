// A 10,000-member group (a public channel's shape): every member subscribed to messageEvents(chatId)
// on its own graphql-ws connection, one message a second from one sender. The targets: every message
// reaches all 10,000 with p99 < 500 ms, and sending costs the sender < 20 ms p99 (the fan-out runs
// after the sender's request has answered). Beside it, in the same run, the bare ws broadcast
// server (bench/ws-bare.ts) with the same clients and sender.
//
// One server process holds the 10,000 sockets (its open-file limit, 20,000 here, allows it); the
// clients are four child processes of 2,500 sockets each, from four source addresses.
import { availableParallelism } from 'node:os';
import { printPhases, runFanoutShape } from './fanout.ts';
import type { BenchContext } from './setup.ts';
import { fixed } from './stats.ts';
import { openFileLimit } from './ws-clients.ts';

const MEMBERS = 10_000;
const CLIENT_PROCESSES = 4;
const MESSAGES = 10;
const TARGET_DELIVERY_P99_MS = 500;
const TARGET_SENDER_P99_MS = 20;

export async function runGroup10k({ databaseUrl }: BenchContext): Promise<void> {
  console.log(`${MEMBERS} members of one GROUP chat, each subscribed to messageEvents(chatId) on its own graphql-ws connection (one server process, open-file limit ${openFileLimit()});`);
  console.log(`one sender (member 1) posts ${MESSAGES} messages at 1/s over HTTP; ${CLIENT_PROCESSES} client processes x ${MEMBERS / CLIENT_PROCESSES} sockets; ${availableParallelism()} cores shared by all`);
  console.log('latency = send start -> a subscriber\'s client has it; answer = the sender\'s HTTP round trip (its cost of sending into the group)');
  console.log('');
  const results = await runFanoutShape(databaseUrl, {
    subscribers: MEMBERS,
    subscriberProcesses: CLIENT_PROCESSES,
    // 200 handshakes in flight in all: more overflowed the listen backlog on a busy 2-core machine.
    connectConcurrency: 50,
    // 10,000 subscriptions at once queue the chat feed's first read behind their own set-ups for
    // longer than FEED_GAP_TIMEOUT_MS on a busy machine (the feed then ends): 100 per process per 100 ms.
    subscribeBatch: 100,
    phases: [['paced 1/s', { mode: 'paced', rate: 1, durationMs: MESSAGES * 1_000, count: MESSAGES }]],
  });
  printPhases(results);
  const ours = results.find((r) => r.server === 'kocmoc')!;
  const bare = results.find((r) => r.server === 'bare ws')!;
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');
  console.log(
    `target every message reaches all ${MEMBERS} with p99 < ${TARGET_DELIVERY_P99_MS} ms: ${verdict(ours.delivered === ours.expected && ours.latency.p99 < TARGET_DELIVERY_P99_MS)} ` +
      `(${ours.delivered} of ${ours.expected}, p99 ${fixed(ours.latency.p99)} ms; bare ws p99 ${fixed(bare.latency.p99)} ms)`,
  );
  console.log(
    `target sender's cost p99 < ${TARGET_SENDER_P99_MS} ms: ${verdict(ours.answerP99Ms < TARGET_SENDER_P99_MS)} ` +
      `(answer p50 ${fixed(ours.answerP50Ms)} / p99 ${fixed(ours.answerP99Ms)} ms; bare ws ${fixed(bare.answerP50Ms)} / ${fixed(bare.answerP99Ms)} ms)`,
  );
  console.log(`server CPU per delivery: ${fixed(ours.cpuPerDeliveryUs)} µs ours vs ${fixed(bare.cpuPerDeliveryUs)} µs bare; one message to ${MEMBERS} = ${fixed((ours.cpuPerDeliveryUs * MEMBERS) / 1_000)} ms of server CPU`);
}
