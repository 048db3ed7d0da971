// The server over a real TCP port: health, readiness, GraphiQL, request ids, error masking.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { capturedLogs, registerUser, startTestApp } from './helpers.ts';
import { connect, settle, subscribe } from './ws-helpers.ts';

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
    // PostgreSQL refuses NUL bytes in text: an error no resolver expects.
    const res = await post(
      { query: 'query ($id: ID!) { user(id: $id) { id } }', variables: { id: 'a\u0000b' } },
      { authorization: `Bearer ${user.accessToken}`, 'x-request-id': 'trace-internal-1' },
    );
    const body = await res.json();
    expect(body.errors[0]).toMatchObject({ message: 'Internal server error.', extensions: { code: 'INTERNAL' } });
    expect(JSON.stringify(body)).not.toMatch(/stack|prisma|postgres|0x00/i);
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

  it('counts live graphql-ws connections and subscriptions', async () => {
    const user = await registerUser(app);
    const connection = connect(`${base}/graphql`, user.accessToken);
    subscribe(connection, 'subscription { chatEvents { type } }');
    await settle(300);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^kocmoc_ws_connections 1$/m);
    expect(text).toMatch(/^kocmoc_ws_operations 1$/m);
    await connection.dispose();
  });
});
