// The server over a real TCP port: health, readiness, GraphiQL, request ids, error masking.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/app.ts';
import { registerUser, startTestApp } from './helpers.ts';

const logLines: any[] = [];
const captureLogger = pino(
  { level: 'info' },
  new Writable({
    write(chunk, _enc, done) {
      logLines.push(JSON.parse(String(chunk)));
      done();
    },
  }),
);

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
