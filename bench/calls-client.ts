// The calls bench's devices, in a process of their own: graphql-ws connections, callEvents and
// werift peers (test/support/call-peers.ts), commanded by bench/calls.ts over IPC.
import { performance } from 'node:perf_hooks';
import { ANSWER_CALL, callDevice, END_CALL, execute, SEND_CALL_SIGNAL, START_CALL, webrtcPeer } from '../test/support/call-peers.ts';
import { connect, type Connection } from '../test/support/ws-helpers.ts';
import { serveCommands } from './push-child.ts';
import { mapLimited } from './graphql-load.ts';
import { sleep } from './stats.ts';

export interface SetupCall {
  chatId: string;
  callerToken: string;
  calleeToken: string;
}

export interface SetupResult {
  setupMs: number[];
  failures: string[];
}

export interface RelayCall {
  callId: string;
  callerToken: string;
  calleeToken: string;
  calleeDeviceId: string;
}

export interface RelayResult {
  latencyMs: number[];
  wallMs: number;
  outOfOrder: number;
  failed: number;
}

const SETUP_TIMEOUT_MS = 15_000;
/** callEvents goes live on the server shortly after subscribing; there is no acknowledgement to wait for. */
const SUBSCRIBE_SETTLE_MS = 150;
const CONNECT_CONCURRENCY = 50;

async function connected(url: string, token: string): Promise<Connection> {
  const connection = connect(url, token);
  await connection.connected;
  return connection;
}

/** One call, from startCall to the caller's data channel open; the clock starts at startCall. */
async function setUpOne(url: string, { chatId, callerToken, calleeToken }: SetupCall): Promise<number> {
  const [callerConnection, calleeConnection] = await Promise.all([connected(url, callerToken), connected(url, calleeToken)]);
  const caller = callDevice(callerConnection, callerToken);
  const callee = callDevice(calleeConnection, calleeToken);
  await sleep(SUBSCRIBE_SETTLE_MS);
  const started = performance.now();
  const { data, errors } = await execute(callerConnection, START_CALL, { input: { chatId, media: 'AUDIO' } });
  if (!data?.startCall) throw new Error(`startCall: ${JSON.stringify(errors)}`);
  const callId = data.startCall.id as string;
  const callerPeer = webrtcPeer(caller, callId);
  const calleePeer = webrtcPeer(callee, callId);
  try {
    callerPeer.attach();
    const opened = callerPeer.call();
    const offer = await callee.next('SIGNAL', SETUP_TIMEOUT_MS);
    await execute(calleeConnection, ANSWER_CALL, { id: callId });
    calleePeer.attach();
    await calleePeer.handle(offer.signal!);
    await Promise.race([opened, sleep(SETUP_TIMEOUT_MS).then(() => Promise.reject(new Error('data channel did not open')))]);
    const setupMs = performance.now() - started;
    await execute(callerConnection, END_CALL, { id: callId });
    return setupMs;
  } finally {
    await Promise.allSettled([callerPeer.close(), calleePeer.close()]);
    caller.stop();
    callee.stop();
    await Promise.all([callerConnection.dispose(), calleeConnection.dispose()]);
  }
}

async function setup({ url, calls }: { url: string; calls: SetupCall[] }): Promise<SetupResult> {
  const setupMs: number[] = [];
  const failures: string[] = [];
  for (const call of calls) {
    try {
      setupMs.push(await setUpOne(url, call));
    } catch (error) {
      failures.push(String((error as Error).message ?? error));
    }
  }
  return { setupMs, failures };
}

export interface RelayPlan {
  url: string;
  calls: RelayCall[];
  signalsPerCall: number;
  signalBytes: number;
  /** 0: every caller sends all its signals at once. Otherwise one signal per call every this many ms, the calls spread evenly over it. */
  intervalMs: number;
}

/** Callers send their signals without waiting for answers; each is timed to its callee's SIGNAL event. */
async function relay({ url, calls, signalsPerCall, signalBytes, intervalMs }: RelayPlan): Promise<RelayResult> {
  const connections = await mapLimited(calls, CONNECT_CONCURRENCY, async (call) => {
    const [caller, callee] = await Promise.all([connected(url, call.callerToken), connected(url, call.calleeToken)]);
    return { caller, callee: callDevice(callee, call.calleeToken) };
  });
  await sleep(2_000);
  const latencyMs: number[] = [];
  let outOfOrder = 0;
  let failed = 0;
  const expected = calls.length * signalsPerCall;
  let allArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  for (const { callee } of connections) {
    let last = -1;
    callee.onSignal = (event) => {
      const { seq, sentAt } = JSON.parse(event.signal!.payload) as { seq: number; sentAt: number };
      latencyMs.push(performance.now() - sentAt);
      if (seq !== last + 1) outOfOrder++;
      last = seq;
      if (latencyMs.length === expected) allArrived();
    };
  }
  const pad = 'x'.repeat(Math.max(0, signalBytes - 40));
  const started = performance.now();
  const sendOne = (call: RelayCall, index: number, seq: number) => {
    const payload = JSON.stringify({ seq, sentAt: performance.now(), pad });
    return execute(connections[index]!.caller, SEND_CALL_SIGNAL, { input: { callId: call.callId, toDeviceId: call.calleeDeviceId, kind: 'ICE_CANDIDATE', payload } });
  };
  await Promise.all(
    calls.map(async (call, index) => {
      const sends: Array<Promise<{ data?: any }>> = [];
      if (intervalMs > 0) await sleep((index / calls.length) * intervalMs);
      for (let seq = 0; seq < signalsPerCall; seq++) {
        if (intervalMs > 0 && seq > 0) await sleep(intervalMs);
        sends.push(sendOne(call, index, seq));
      }
      const results = await Promise.all(sends);
      failed += results.filter((r) => !r.data?.sendCallSignal).length;
    }),
  );
  await Promise.race([arrived, sleep(60_000)]);
  const wallMs = performance.now() - started;
  await Promise.all(connections.flatMap(({ caller, callee }) => [caller.dispose(), callee.connection.dispose()]));
  return { latencyMs, wallMs, outOfOrder, failed };
}

if (process.argv.includes('--calls-client')) serveCommands({ setup, relay });
