// Load generator for the benches. It runs in its own worker thread so that building requests and
// parsing responses does not count as event-loop delay of the server under test.
// Plain JS: worker threads do not inherit the main thread's tsx loader.
//
// HTTP/1.1 over raw keep-alive sockets rather than fetch: on 2 cores the client shares the CPU with
// the server it measures, and fetch (undici's WHATWG layer) cost about 1 ms of CPU per request,
// a tenth of an argon2 verification. Writing prebuilt bytes and reading one JSON body costs a few
// dozen microseconds, like a load balancer's keep-alive connections to the server would.
import { readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { parentPort } from 'node:worker_threads';

/** Idle keep-alive sockets per `host:port`, reused by later requests to the same server. */
const idleSockets = new Map();

/** One POST over a real socket, timed from send to parsed body; never throws. */
function post({ url, query, variables, timeoutMs }) {
  const started = performance.now();
  const target = new URL(url);
  const body = Buffer.from(JSON.stringify({ query, variables }));
  const head =
    `POST ${target.pathname} HTTP/1.1\r\nhost: ${target.host}\r\ncontent-type: application/json\r\n` +
    `accept: application/graphql-response+json, application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
  return new Promise((resolve) => {
    const origin = target.host;
    const reused = idleSockets.get(origin)?.pop();
    reused?.emit('reused');
    const socket = reused ?? connect({ host: target.hostname, port: Number(target.port), noDelay: true });
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (code, data, reusable) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (reusable) keepIdle(origin, socket);
      else socket.destroy();
      resolve({ code, ms: performance.now() - started, data });
    };
    const onData = (chunk) => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const response = parseResponse(received);
      if (!response) return;
      const parsed = parseBody(response.body);
      const code = !parsed ? `HTTP_${response.status}` : parsed.errors?.length ? (parsed.errors[0]?.extensions?.code ?? 'UNKNOWN') : 'OK';
      finish(code, parsed?.data ?? null, response.keepAlive);
    };
    const onError = () => finish('NETWORK', null, false);
    const onClose = () => finish('NETWORK', null, false);
    const timer = setTimeout(() => finish('TIMEOUT', null, false), timeoutMs);
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.write(head);
    socket.write(body);
  });
}

/** Parks a socket for reuse until the server closes it (keep-alive timeout), then forgets it. */
function keepIdle(origin, socket) {
  const idle = idleSockets.get(origin) ?? idleSockets.set(origin, []).get(origin);
  const forget = () => {
    const index = idle.indexOf(socket);
    if (index >= 0) idle.splice(index, 1);
  };
  socket.once('close', forget);
  socket.once('error', forget);
  idle.push(socket);
  // Taken again: the request in flight handles close and errors itself.
  socket.once('reused', () => {
    socket.off('close', forget).off('error', forget);
  });
}

/** A complete response in `buffer`, or undefined while more bytes are due (content-length or chunked). */
function parseResponse(buffer) {
  const headerEnd = buffer.indexOf('\r\n\r\n');
  if (headerEnd < 0) return undefined;
  const head = buffer.toString('latin1', 0, headerEnd).toLowerCase();
  const status = Number(head.slice(9, 12));
  const keepAlive = !/\r\nconnection: *close/.test(head);
  const start = headerEnd + 4;
  const length = /\r\ncontent-length: *(\d+)/.exec(head);
  if (length) {
    const end = start + Number(length[1]);
    return buffer.length < end ? undefined : { status, keepAlive, body: buffer.subarray(start, end) };
  }
  if (!/\r\ntransfer-encoding: *chunked/.test(head)) return undefined;
  const chunks = [];
  let offset = start;
  for (;;) {
    const lineEnd = buffer.indexOf('\r\n', offset);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buffer.toString('latin1', offset, lineEnd), 16);
    if (buffer.length < lineEnd + 2 + size + 2) return undefined;
    if (size === 0) return { status, keepAlive, body: Buffer.concat(chunks) };
    chunks.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
}

function parseBody(body) {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}

// The OS thread id, so the bench can tell this thread's CPU from the server's (Linux only).
let tid;
try {
  tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
} catch {
  tid = undefined;
}
parentPort.postMessage({ tid });

// Each message is a batch sent all at once; the answer keeps the batch's order.
parentPort.on('message', async ({ id, requests }) => {
  const started = performance.now();
  const results = await Promise.all(requests.map(post));
  parentPort.postMessage({ id, results, wallMs: performance.now() - started });
});
