// Load generator for the benches. It runs in its own worker thread so that building requests and
// parsing responses does not count as event-loop delay of the server under test.
// Plain JS: worker threads do not inherit the main thread's tsx loader.
import { parentPort } from 'node:worker_threads';

/** One POST over a real socket, timed from send to parsed body; never throws. */
async function post({ url, query, variables, timeoutMs }) {
  const started = performance.now();
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = await response.json().catch(() => undefined);
    const code = !body ? `HTTP_${response.status}` : body.errors?.length ? (body.errors[0]?.extensions?.code ?? 'UNKNOWN') : 'OK';
    return { code, ms: performance.now() - started, data: body?.data ?? null };
  } catch (error) {
    return { code: error?.name === 'TimeoutError' ? 'TIMEOUT' : 'NETWORK', ms: performance.now() - started, data: null };
  }
}

// Each message is a batch sent all at once; the answer keeps the batch's order.
parentPort.on('message', async ({ id, requests }) => {
  const started = performance.now();
  const results = await Promise.all(requests.map(post));
  parentPort.postMessage({ id, results, wallMs: performance.now() - started });
});
