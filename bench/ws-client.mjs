// WebSocket load for the WebSocket benches, in a child process of its own so that the server
// process's RSS and CPU are the server's alone. Real graphql-ws clients (the same library and
// protocol an app uses), all bound to one loopback source address so that tens of thousands of
// sockets do not exhaust one address's ephemeral ports. Also the sender of the fan-out bench.
// Plain JS: started without the tsx loader, so a child costs little memory and starts fast.
//
// Requests come over IPC as { id, command, ...args }; each is answered with { id, result } or
// { id, error }. Times cross processes as process.hrtime (CLOCK_MONOTONIC, shared by every process
// on the machine), so a receiver can subtract a sender's timestamp.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const localAddress = process.argv[2] ?? '127.0.0.1';
/** A handshake that has not been acknowledged after this long counts as failed. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** The ws class graphql-ws instantiates, with our source address (and no compression: the server offers none). */
class BoundWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { localAddress, perMessageDeflate: false });
  }
}

/** @type {{ client: import('graphql-ws').Client, open: boolean }[]} */
let connections = [];
const closeCodesAfterOpen = new Map();

/** Deliveries per phase: latencies (ms, send to receive) and receive times. */
const phases = new Map();
let deliveryErrors = 0;
let firstDeliveryError;
/** Size of one delivered message as it travelled (re-serialized), for comparing payloads. */
let sampleMessageBytes = 0;

const nowNs = () => process.hrtime.bigint();

function phaseOf(name) {
  let phase = phases.get(name);
  if (!phase) phases.set(name, (phase = { latencies: [], firstNs: 0n, lastNs: 0n }));
  return phase;
}

/** Opens one graphql-ws connection; resolves with null once acknowledged, or with why it failed. */
function openConnection(url, token, record) {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (failure) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(failure);
    };
    const entry = { client: undefined, open: false };
    const timer = setTimeout(() => {
      settle('TIMEOUT');
      void entry.client.dispose();
    }, HANDSHAKE_TIMEOUT_MS);
    entry.client = createClient({
      url,
      webSocketImpl: BoundWebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams: { authorization: `Bearer ${token}` },
      on: {
        connected: () => {
          entry.open = true;
          record(entry);
          settle(null);
        },
        closed: (event) => {
          const code = String(event?.code ?? 'ERROR');
          if (entry.open) {
            entry.open = false;
            closeCodesAfterOpen.set(code, (closeCodesAfterOpen.get(code) ?? 0) + 1);
          }
          settle(`CLOSED_${code}`);
        },
        error: () => settle('ERROR'),
      },
      onNonLazyError: () => {},
    });
  });
}

/** Opens one connection per token, at most `concurrency` handshakes at a time. */
async function connect({ url, tokens, concurrency = 200 }) {
  const started = nowNs();
  const failures = new Map();
  let next = 0;
  const worker = async () => {
    while (next < tokens.length) {
      const failure = await openConnection(url, tokens[next++], (entry) => connections.push(entry));
      if (failure) failures.set(failure, (failures.get(failure) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tokens.length) }, worker));
  return { opened: tokens.length - sum(failures), failures: Object.fromEntries(failures), ms: Number(nowNs() - started) / 1e6 };
}

const sum = (map) => [...map.values()].reduce((total, value) => total + value, 0);

function status() {
  return { open: connections.filter((c) => c.open).length, closedAfterOpen: Object.fromEntries(closeCodesAfterOpen) };
}

/**
 * Subscribes every open connection; each delivered text carries `fanout|<phase>|<send hrtime ns>|…`.
 * With `batch`, `batch` subscriptions at a time, `pauseMs` apart (a paced start for a large group).
 */
async function subscribe({ query, variables, batch = Infinity, pauseMs = 0 }) {
  let inBatch = 0;
  for (const { client, open } of connections) {
    if (!open) continue;
    if (++inBatch > batch) {
      inBatch = 1;
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    client.subscribe(
      { query, variables },
      {
        next: (value) => {
          const receivedNs = nowNs();
          const text = value?.data?.messageEvents?.message?.text;
          if (typeof text !== 'string') return noteError(value?.errors ?? value);
          const [tag, name, sentNs] = text.split('|', 3);
          if (tag !== 'fanout') return;
          const phase = phaseOf(name);
          phase.latencies.push(Number(receivedNs - BigInt(sentNs)) / 1e6);
          if (phase.firstNs === 0n) phase.firstNs = receivedNs;
          phase.lastNs = receivedNs;
          if (sampleMessageBytes === 0) sampleMessageBytes = Buffer.byteLength(JSON.stringify({ id: '00000000-0000-0000-0000-000000000000', type: 'next', payload: value }));
        },
        error: noteError,
        complete: () => {},
      },
    );
  }
  return { subscribed: connections.filter((c) => c.open).length };
}

function noteError(error) {
  deliveryErrors++;
  firstDeliveryError ??= JSON.stringify(error)?.slice(0, 300);
}

function count({ phase }) {
  return { delivered: phases.get(phase)?.latencies.length ?? 0, errors: deliveryErrors, firstError: firstDeliveryError };
}

/** Hands over (and forgets) one phase's deliveries. */
function take({ phase }) {
  const recorded = phases.get(phase) ?? { latencies: [], firstNs: 0n, lastNs: 0n };
  phases.delete(phase);
  return {
    latencies: Float64Array.from(recorded.latencies),
    firstNs: recorded.firstNs,
    lastNs: recorded.lastNs,
    errors: deliveryErrors,
    firstError: firstDeliveryError,
    messageBytes: sampleMessageBytes,
  };
}

async function closeAll() {
  const closing = connections;
  connections = [];
  await Promise.all(closing.map(({ client }) => client.dispose()));
  return { closed: closing.length };
}

/**
 * The sender: POSTs messages for `durationMs` (or until `count` were sent) in one of three ways:
 * - `sequential`: each as soon as the previous was answered (as fast as the server allows);
 * - `paced`: `rate` per second on a fixed schedule, but never two at once (a late answer delays the next);
 * - `open`: `rate` per second on a fixed schedule whatever happened to earlier ones, so requests
 *   overlap when answers are slow (as several senders, or an impatient client, would).
 * `format` says what the body is: a GraphQL sendMessage, or the bare server's `{ text }`.
 */
async function send({ url, token, chatId, format, phase, mode, rate, durationMs, count = Infinity, textBytes = 100 }) {
  const headers = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const answerMs = [];
  const failures = new Map();
  let sent = 0;

  const sendOne = async () => {
    const sentNs = nowNs();
    // Padding brings the text to a typical short message's size.
    const head = `fanout|${phase}|${sentNs}|`;
    const text = head + 'x'.repeat(Math.max(0, textBytes - head.length));
    const body =
      format === 'graphql'
        ? { query: 'mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }', variables: { input: { chatId, kind: 'TEXT', text } } }
        : { text };
    sent++;
    try {
      const response = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
      const answer = await response.json().catch(() => undefined);
      const code = !answer ? `HTTP_${response.status}` : answer.errors?.length ? (answer.errors[0]?.extensions?.code ?? 'ERROR') : 'OK';
      if (code !== 'OK') failures.set(code, (failures.get(code) ?? 0) + 1);
    } catch (error) {
      const code = error?.name === 'TimeoutError' ? 'TIMEOUT' : 'NETWORK';
      failures.set(code, (failures.get(code) ?? 0) + 1);
    }
    answerMs.push(Number(nowNs() - sentNs) / 1e6);
  };

  const startedNs = nowNs();
  const endNs = startedNs + BigInt(Math.round(durationMs * 1e6));
  if (mode === 'sequential') {
    while (nowNs() < endNs && sent < count) await sendOne();
  } else {
    const inFlight = [];
    const intervalNs = 1e9 / rate;
    for (let index = 0; index < count; index++) {
      const dueNs = startedNs + BigInt(Math.round(index * intervalNs));
      if (dueNs >= endNs) break;
      const waitMs = Number(dueNs - nowNs()) / 1e6;
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      if (mode === 'paced') await sendOne();
      else inFlight.push(sendOne());
    }
    await Promise.all(inFlight);
  }
  return { sent, startedNs, finishedNs: nowNs(), answerMs: Float64Array.from(answerMs), failures: Object.fromEntries(failures) };
}

const commands = { connect, status, subscribe, count, take, closeAll, send };

process.on('message', async ({ id, command, ...args }) => {
  try {
    const result = await commands[command](args);
    process.send({ id, result });
  } catch (error) {
    process.send({ id, error: String(error?.stack ?? error) });
  }
});
// The parent went away (or told us to stop): leave without waiting for sockets.
process.on('disconnect', () => process.exit(0));
