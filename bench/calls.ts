// Calls: how long a call takes to set up (startCall sent → the caller's WebRTC data channel open,
// with real werift peers on loopback signalling only through Kocmoc), and how long a signal takes
// from sendCallSignal to the receiving device's SIGNAL event while 500 calls signal at once.
//
// The server runs in this process, without Redis (one instance); the devices and their peers run
// in a child process (bench/calls-client.ts), so this process's CPU is the server's.
import { forkChild } from './push-child.ts';
import { mapLimited, postGraphQL } from './graphql-load.ts';
import { summarizeLatency } from './outcomes.ts';
import { benchConfig, startBenchApp, type BenchContext } from './setup.ts';
import { fixed, table } from './stats.ts';
import { createBenchUsers, type BenchUser } from './ws-fixtures.ts';
import type { RelayCall, RelayResult, SetupCall, SetupResult } from './calls-client.ts';

/** Calls set up one after another (each a fresh pair of peers). */
const SETUP_CALLS = 100;
/** Calls signalling at once in the relay phases. */
const RELAY_CALLS = 500;
/**
 * Burst: each caller sends a set-up's worth of trickled ICE candidates at once, all calls at the
 * same instant. Paced: each call one signal every PACED_INTERVAL_MS (RELAY_CALLS / 2 per second).
 */
const BURST_SIGNALS = 10;
const PACED_SIGNALS = 5;
const PACED_INTERVAL_MS = 2_000;
/** A typical trickled ICE candidate is 100-250 bytes of JSON. */
const SIGNAL_BYTES = 200;
const SETUP_CONCURRENCY = 16;

const CREATE_DIRECT = `mutation ($input: CreateChatInput!) { createChat(input: $input) { id } }`;
const START = `mutation ($input: StartCallInput!) { startCall(input: $input) { id } }`;
const ANSWER = `mutation ($id: ID!) { answerCall(callId: $id) { id } }`;

async function directChats(url: string, pairs: Array<[BenchUser, BenchUser]>): Promise<string[]> {
  return mapLimited(pairs, SETUP_CONCURRENCY, async ([caller, callee]) => {
    const { createChat } = await postGraphQL(url, CREATE_DIRECT, { input: { kind: 'DIRECT', memberIds: [callee.userId] } }, caller.accessToken);
    return createChat.id as string;
  });
}

const latencyCells = (values: number[]) => {
  const latency = summarizeLatency(values);
  return [fixed(latency.p50), fixed(latency.p95), fixed(latency.p99), fixed(latency.max)];
};

function cpuMsSince(before: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1_000;
}

const pairsOf = (users: BenchUser[]) => Array.from({ length: users.length / 2 }, (_, i) => [users[2 * i]!, users[2 * i + 1]!] as [BenchUser, BenchUser]);

export async function runCalls({ databaseUrl }: BenchContext): Promise<void> {
  const { app, url } = await startBenchApp(benchConfig({ DATABASE_URL: databaseUrl, PUSH_ENABLED: 'false', CALL_RING_SECONDS: '120', CALL_RECONNECT_SECONDS: '600' }));
  const client = forkChild(new URL('./calls-client.ts', import.meta.url), '--calls-client');
  try {
    const setupPairs = pairsOf(await createBenchUsers(app, SETUP_CALLS * 2, 'callsetup'));
    const setupChats = await directChats(url, setupPairs);
    const setupCalls: SetupCall[] = setupPairs.map(([caller, callee], i) => ({ chatId: setupChats[i]!, callerToken: caller.accessToken, calleeToken: callee.accessToken }));
    const setup = await client.call<SetupResult>('setup', { url, calls: setupCalls });

    const relayPairs = pairsOf(await createBenchUsers(app, RELAY_CALLS * 2, 'callrelay'));
    const relayChats = await directChats(url, relayPairs);
    const relayCalls: RelayCall[] = await mapLimited(relayPairs, SETUP_CONCURRENCY, async ([caller, callee], i) => {
      const { startCall } = await postGraphQL(url, START, { input: { chatId: relayChats[i], media: 'AUDIO' } }, caller.accessToken);
      await postGraphQL(url, ANSWER, { id: startCall.id }, callee.accessToken);
      return { callId: startCall.id, callerToken: caller.accessToken, calleeToken: callee.accessToken, calleeDeviceId: callee.sessionId };
    });
    const phases: Array<[string, number, number]> = [
      [`burst: ${BURST_SIGNALS} per call at once`, BURST_SIGNALS, 0],
      [`paced: 1 per call every ${PACED_INTERVAL_MS / 1000} s`, PACED_SIGNALS, PACED_INTERVAL_MS],
    ];
    const rows: Array<Array<string | number>> = [['startCall → data channel open', setup.setupMs.length, ...latencyCells(setup.setupMs), '-', '-']];
    for (const [label, signalsPerCall, intervalMs] of phases) {
      const cpuBefore = process.cpuUsage();
      const relay = await client.call<RelayResult>('relay', { url, calls: relayCalls, signalsPerCall, signalBytes: SIGNAL_BYTES, intervalMs });
      const cpuMs = cpuMsSince(cpuBefore);
      rows.push([
        `sendCallSignal → SIGNAL, ${label}`,
        `${relay.latencyMs.length}/${RELAY_CALLS * signalsPerCall}`,
        ...latencyCells(relay.latencyMs),
        fixed(relay.latencyMs.length / (relay.wallMs / 1000), 0),
        fixed((cpuMs * 1000) / Math.max(1, relay.latencyMs.length), 0),
      ]);
      if (relay.outOfOrder + relay.failed > 0) console.log(`${label}: ${relay.outOfOrder} out of order, ${relay.failed} refused`);
    }
    console.log(`set-up: ${SETUP_CALLS} calls one after another, werift peers on loopback, no TURN (host candidates)`);
    console.log(`relay: ${RELAY_CALLS} active calls, ICE_CANDIDATE signals of ${SIGNAL_BYTES} bytes, each timed from its send to the callee's SIGNAL event`);
    console.log(`signals/s: delivered per second of the phase; server µs/signal: this process's CPU per signal delivered`);
    console.log(table(['measure', 'count', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'signals/s', 'server µs/signal'], rows));
    if (setup.failures.length > 0) console.log(`set-up failures: ${setup.failures.slice(0, 5).join('; ')}`);
  } finally {
    await client.stop();
    await app.stop();
  }
}
