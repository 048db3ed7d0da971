// The server over a real TCP port: health, readiness, GraphiQL, request ids, error masking.
import { Agent, request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { capturedLogs, registerUser, startTestApp } from './support/helpers.ts';
import { CHAT_EVENTS } from './support/operations.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const { logs: logLines, logger: captureLogger } = capturedLogs('info');

let app: App;
let base: string;
beforeAll(async () => {
  app = await startTestApp({}, { logger: captureLogger });
  const { port } = await app.start();
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await app?.stop();
});

const post = (body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('HTTP', () => {
  it('GET /health answers while the process lives', async () => {
    const res = await fetch(`${base}/health`);
    expect(res.status).toBe(200);
  });

  it('GET /ready answers 200 when the database is reachable and migrated', async () => {
    const res = await fetch(`${base}/ready`);
    expect(res.status).toBe(200);
  });

  it('serves GraphiQL to browsers on GET /graphql', async () => {
    const res = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/graphiql/i);
  });

  it('registers and reads back over the wire', async () => {
    const user = await registerUser(app);
    const res = await post({ query: '{ me { id } }' }, { authorization: `Bearer ${user.accessToken}` });
    expect(await res.json()).toEqual({ data: { me: { id: user.id } } });
  });

  it('echoes a well-formed x-request-id and replaces a malformed one', async () => {
    const kept = await post({ query: '{ __typename }' }, { 'x-request-id': 'client-trace-12345' });
    expect(kept.headers.get('x-request-id')).toBe('client-trace-12345');
    const replaced = await post({ query: '{ __typename }' }, { 'x-request-id': 'bad id\twith spaces' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const fresh = await post({ query: '{ __typename }' });
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('masks an unexpected error as INTERNAL and logs it with the request id', async () => {
    const user = await registerUser(app);
    // A failure no resolver expects (input cannot cause one any more: NUL bytes are refused up front).
    const { presence } = app.services;
    const onlineUserIds = presence.onlineUserIds;
    presence.onlineUserIds = () => Promise.reject(new Error('presence store unreachable'));
    let res: Response;
    try {
      res = await post(
        { query: 'query ($id: ID!) { user(id: $id) { id status } }', variables: { id: user.id } },
        { authorization: `Bearer ${user.accessToken}`, 'x-request-id': 'trace-internal-1' },
      );
    } finally {
      presence.onlineUserIds = onlineUserIds;
    }
    const body = await res.json();
    expect(body.errors[0]).toMatchObject({ message: 'Internal server error.', extensions: { code: 'INTERNAL' } });
    expect(JSON.stringify(body)).not.toMatch(/stack|prisma|postgres|unreachable/i);
    const logged = logLines.find((line) => line.requestId === 'trace-internal-1' && line.msg === 'unexpected error');
    expect(logged?.err?.message).toBeTruthy();
  });

  it('answers malformed requests with a GraphQL error, not a crash', async () => {
    const res = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.errors[0].message).toBeTruthy();
    const unknownField = await post({ query: '{ nope }' });
    expect((await unknownField.json()).errors[0].message).toMatch(/nope/);
  });
});

describe('GET /metrics', () => {
  it('exposes GraphQL, WebSocket and worker-pool series in Prometheus format', async () => {
    await post({ query: '{ __typename }' });
    await post({ query: '{ nope }' });
    await registerUser(app); // runs a worker task (password hashing)
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    for (const series of [
      'graphql_envelop_request_duration',
      'graphql_envelop_phase_execute',
      'graphql_envelop_error_result',
      'graphql_yoga_http_duration',
      'kocmoc_ws_connections',
      'kocmoc_ws_operations',
      'kocmoc_worker_pool_queue_length',
      'kocmoc_worker_task_duration_seconds_bucket{le="0.5",task="hashPassword"}',
      'kocmoc_process_resident_memory_bytes',
    ]) {
      expect(text).toContain(series);
    }
    expect(text).toMatch(/graphql_envelop_request_duration_count\{[^}]*\} [1-9]/);
  });

  it('counts errors sent to clients by code and transport', async () => {
    const user = await registerUser(app);
    const count = async (code: string, transport: string) => {
      const text = await (await fetch(`${base}/metrics`)).text();
      const line = new RegExp(`^kocmoc_graphql_errors_total\\{code="${code}",transport="${transport}"\\} (\\d+)$`, 'm').exec(text);
      return line ? Number(line[1]) : 0;
    };
    const before = {
      badInput: await count('BAD_USER_INPUT', 'http'),
      unauthenticated: await count('UNAUTHENTICATED', 'http'),
      validation: await count('GRAPHQL_VALIDATION_FAILED', 'ws'),
      wsUnauthenticated: await count('UNAUTHENTICATED', 'ws'),
    };
    await post({ query: 'mutation { login(input: { login: "", password: "x" }) { accessToken } }' });
    await post({ query: 'mutation { login(input: { login: "nobody-here", password: "wrong password" }) { accessToken } }' });
    await post({ query: '{ me { id } }' });
    const connection = connect(`${base}/graphql`, user.accessToken);
    const invalid = subscribe(connection, 'subscription { noSuchField }');
    await invalid.completed;
    const mutation = subscribe(connection, 'mutation { login(input: { login: "nobody-here", password: "wrong password" }) { accessToken } }');
    await mutation.completed;
    await connection.dispose();

    expect(await count('BAD_USER_INPUT', 'http')).toBe(before.badInput + 1);
    // The wrong password and the signed-out `me`.
    expect(await count('UNAUTHENTICATED', 'http')).toBe(before.unauthenticated + 2);
    expect(await count('GRAPHQL_VALIDATION_FAILED', 'ws')).toBe(before.validation + 1);
    expect(await count('UNAUTHENTICATED', 'ws')).toBe(before.wsUnauthenticated + 1);
  });

  it('counts live graphql-ws connections and subscriptions', async () => {
    const user = await registerUser(app);
    const connection = connect(`${base}/graphql`, user.accessToken);
    subscribe(connection, CHAT_EVENTS);
    await settle(300);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^kocmoc_ws_connections 1$/m);
    expect(text).toMatch(/^kocmoc_ws_operations 1$/m);
    await connection.dispose();
  });
});

describe('request body limit (MAX_REQUEST_BYTES)', () => {
  const LIMIT = 16_384;
  let small: App;
  let port: number;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  beforeAll(async () => {
    small = await startTestApp({ MAX_REQUEST_BYTES: String(LIMIT) });
    ({ port } = await small.start());
  });
  afterAll(async () => {
    agent.destroy();
    await small?.stop();
  });

  /** A `{ __typename }` query padded with whitespace to `bytes`, sent with Content-Length or chunked, on one kept-alive socket. */
  function send(bytes: number, framing: 'content-length' | 'chunked') {
    const query = '{ __typename }';
    const json = JSON.stringify({ query: query + ' '.repeat(Math.max(0, bytes - JSON.stringify({ query }).length)) });
    const body = Buffer.from(json);
    let answered = false;
    return new Promise<{ status: number; headers: Record<string, unknown>; body: any; socket: unknown }>((resolve, reject) => {
      const req = httpRequest(
        { port, host: '127.0.0.1', path: '/graphql', method: 'POST', agent, headers: { 'content-type': 'application/json', ...(framing === 'content-length' ? { 'content-length': body.length } : {}) } },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString()), socket: req.socket }));
        },
      );
      req.on('error', reject);
      // In pieces, as a client streaming a body would; a chunked one stops once the server has
      // answered (what it did not read would otherwise reset the connection under its answer).
      void (async () => {
        for (let at = 0; at < body.length && !(answered && framing === 'chunked'); at += 4_096) {
          req.write(body.subarray(at, at + 4_096));
          await new Promise((wait) => setTimeout(wait, 2));
        }
        req.end();
      })();
    });
  }

  it.each(['content-length', 'chunked'] as const)('answers a %s body within the limit', async (framing) => {
    const res = await send(LIMIT - 100, framing);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ __typename: 'Query' });
  });

  it('refuses a body whose Content-Length is over the limit before reading it, with 413 BAD_USER_INPUT', async () => {
    const res = await send(LIMIT + 1, 'content-length');
    expect(res.status).toBe(413);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'body' });
    expect(res.body.errors[0].message).toContain('16 KiB');
    // Refusals before execution are counted with the rest.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/^kocmoc_graphql_errors_total\{code="BAD_USER_INPUT",transport="http"\} 1$/m);
    // The unread body was discarded, not left on the connection: the next request on it works.
    const next = await send(100, 'content-length');
    expect(next.body.data).toEqual({ __typename: 'Query' });
  });

  it('refuses a chunked body over the limit with 413, reading the rest so the connection stays usable', async () => {
    const res = await send(LIMIT * 4, 'chunked');
    expect(res.status).toBe(413);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'body' });
    expect(res.headers.connection).not.toBe('close');
    const next = await send(100, 'chunked');
    expect(next.body.data).toEqual({ __typename: 'Query' });
    expect(next.socket).toBe(res.socket);
  });

  it('stops reading a chunked body far over the limit and stays up', async () => {
    const outcome = await send(LIMIT * 64, 'chunked').then(
      (res) => ({ status: res.status, connection: res.headers.connection }),
      (error: NodeJS.ErrnoException) => ({ status: error.code }),
    );
    // The 413 with `Connection: close`, or, when the client was still sending, a reset under it.
    expect([{ status: 413, connection: 'close' }, { status: 'ECONNRESET' }, { status: 'EPIPE' }]).toContainEqual(outcome);
    const next = await send(100, 'content-length');
    expect(next.body.data).toEqual({ __typename: 'Query' });
  });

  it('leaves uploads to their own, larger limit', async () => {
    const user = await registerUser(small);
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: 'mutation ($file: File!) { uploadFile(file: $file, kind: FILE) { size } }', variables: { file: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.file'] }));
    form.set('0', new Blob([Buffer.alloc(LIMIT * 4, 7)]), 'big.bin');
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${user.accessToken}` }, body: form });
    const json: any = await res.json();
    expect(json.errors).toBeUndefined();
    expect(json.data.uploadFile.size).toBe(LIMIT * 4);
  });
});
