// Calls: how long a call takes to set up (startCall sent → the caller's WebRTC data channel open,
// with real werift peers on loopback signalling only through Kocmoc), and how long a signal takes
// from sendCallSignal to the receiving device's SIGNAL event while 500 calls signal at once.
//
// The server runs in this process, without Redis (one instance); the devices and their peers run
// in a child process (bench/calls-client.ts), so this process's CPU is the server's.
import { performance } from 'node:perf_hooks';
import { forkChild } from './push-child.ts';
import { mapLimited, postGraphQL } from './graphql-load.ts';
import { summarizeLatency } from './outcomes.ts';
import { benchConfig, startBenchApp, type BenchContext } from './setup.ts';
import { fixed, table } from './stats.ts';
import { createBenchUsers, type BenchUser } from './ws-fixtures.ts';
import type { RelayCall, RelayResult, SetupCall, SetupResult } from './calls-client.ts';

/** Calls set up one after another (each a fresh pair of peers). */
const SETUP_CALLS = 100;
/** Calls signalling at once in the relay phase, and the signals each caller sends its callee. */
const RELAY_CALLS = 500;
const SIGNALS_PER_CALL = 20;
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

const pairsOf = (users: BenchUser[]) => Array.from({ length: users.length / 2 }, (_, i) => [users[2 * i]!, users[2 * i + 1]!] as [BenchUser, BenchUser]);

export async function runCalls({ databaseUrl }: BenchContext): Promise<void> {
  const { app, url } = await startBenchApp(benchConfig({ DATABASE_URL: databaseUrl, PUSH_ENABLED: 'false', CALL_RING_SECONDS: '120' }));
  const client = forkChild(new URL('./calls-client.ts', import.meta.url), '--calls-client');
  try {
    const setupPairs = pairsOf(await createBenchUsers(app, SETUP_CALLS * 2, 'callsetup'));
    const setupChats = await directChats(url, setupPairs);
    const setupCalls: SetupCall[] = setupPairs.map(([caller, callee], i) => ({ chatId: setupChats[i]!, callerToken: caller.accessToken, calleeToken: callee.accessToken }));
    const setup = await client.call<SetupResult>('setup', { url, calls: setupCalls });
    const setupLatency = summarizeLatency(setup.setupMs);

    const relayPairs = pairsOf(await createBenchUsers(app, RELAY_CALLS * 2, 'callrelay'));
    const relayChats = await directChats(url, relayPairs);
    const relayCalls: RelayCall[] = await mapLimited(relayPairs, SETUP_CONCURRENCY, async ([caller, callee], i) => {
      const { startCall } = await postGraphQL(url, START, { input: { chatId: relayChats[i], media: 'AUDIO' } }, caller.accessToken);
      await postGraphQL(url, ANSWER, { id: startCall.id }, callee.accessToken);
      return { callId: startCall.id, callerToken: caller.accessToken, calleeToken: callee.accessToken, calleeDeviceId: callee.sessionId };
    });
    const cpuBefore = process.cpuUsage();
    const wallBefore = performance.now();
    const relay = await client.call<RelayResult>('relay', { url, calls: relayCalls, signalsPerCall: SIGNALS_PER_CALL, signalBytes: SIGNAL_BYTES });
    const cpu = process.cpuUsage(cpuBefore);
    const serverCpuShare = (cpu.user + cpu.system) / 1_000 / (performance.now() - wallBefore);
    const relayLatency = summarizeLatency(relay.latencyMs);

    console.log(`set-up: ${SETUP_CALLS} calls one after another, werift peers on loopback, no TURN (host candidates)`);
    console.log(`relay: ${RELAY_CALLS} active calls, each caller sends ${SIGNALS_PER_CALL} ICE_CANDIDATE signals of ${SIGNAL_BYTES} bytes at once (${RELAY_CALLS * SIGNALS_PER_CALL} signals)`);
    console.log(
      table(
        ['measure', 'count', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
        [
          ['startCall → data channel open', setup.setupMs.length, fixed(setupLatency.p50), fixed(setupLatency.p95), fixed(setupLatency.p99), fixed(setupLatency.max)],
          ['sendCallSignal → SIGNAL event', relay.latencyMs.length, fixed(relayLatency.p50), fixed(relayLatency.p95), fixed(relayLatency.p99), fixed(relayLatency.max)],
        ],
      ),
    );
    console.log(
      `relay: ${relay.latencyMs.length} of ${RELAY_CALLS * SIGNALS_PER_CALL} delivered in ${fixed(relay.wallMs, 0)} ms ` +
        `(${fixed(relay.latencyMs.length / (relay.wallMs / 1000), 0)} signals/s), ${relay.outOfOrder} out of order, ${relay.failed} refused; ` +
        `server CPU ${fixed(serverCpuShare * 100, 0)}% of a core`,
    );
    if (setup.failures.length > 0) console.log(`set-up failures: ${setup.failures.slice(0, 5).join('; ')}`);
  } finally {
    await client.stop();
    await app.stop();
  }
}
