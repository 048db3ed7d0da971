// What NODE_ENV=production shows the world: no introspection, no field suggestions, no GraphiQL,
// CORS only for CORS_ORIGINS and never with credentials, security headers, /metrics only with its
// token or on its own port; and /metrics labels from bounded sets whatever clients send.
import { randomBytes } from 'node:crypto';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { GRAPHIQL_CSP } from '../src/server/graphiql.ts';
import { gql, startTestApp } from './support/helpers.ts';

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const PRODUCTION = {
  NODE_ENV: 'production',
  MESSAGE_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
  PUSH_ENABLED: 'false',
  CORS_ORIGINS: 'https://app.example.com',
};

const preflight = (app: App, origin: string) =>
  app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
  });

describe('NODE_ENV=production', () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ ...PRODUCTION, METRICS_TOKEN });
  });
  afterAll(() => app.stop());

  it('refuses introspection', async () => {
    const result = await gql(app, getIntrospectionQuery());
    expect(result.data ?? null).toBeNull();
    expect(result.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(result.errors?.[0]?.message).toMatch(/Introspection is disabled/);
    expect(result.errors).toHaveLength(1);
    expect((await gql(app, '{ __type(name: "User") { name } }')).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // __typename is not introspection of the schema.
    expect((await gql(app, '{ __typename }')).data).toEqual({ __typename: 'Query' });
  });

  it('suggests no field names in errors', async () => {
    const result = await gql(app, '{ serchUsers(query: "a") { edges { node { id } } } }');
    expect(result.errors?.[0]?.message).toMatch(/Cannot query field "serchUsers"/);
    expect(JSON.stringify(result.errors)).not.toMatch(/Did you mean|searchUsers/);
  });

  it('serves no GraphiQL', async () => {
    const response = await app.yoga.fetch('http://kocmoc.test/graphql', { headers: { accept: 'text/html' } });
    expect(response.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    expect(await response.text()).not.toMatch(/graphiql/i);
  });

  it('refuses a CORS preflight from an unlisted origin, and allows a listed one without credentials', async () => {
    const refused = await preflight(app, 'https://evil.example');
    expect(refused.status).toBe(403);
    expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    expect(refused.headers.get('access-control-allow-credentials')).toBeNull();
    const allowed = await preflight(app, 'https://app.example.com');
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(allowed.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();
    // A simple request from an unlisted origin gets no CORS headers, so its page cannot read the answer.
    const simple = await gql(app, '{ __typename }', {}, { headers: { origin: 'https://evil.example' } });
    expect(simple.response.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('sends security headers on every response', async () => {
    for (const response of [(await gql(app, '{ __typename }')).response, await app.yoga.fetch('http://kocmoc.test/health')]) {
      expect(response.headers.get('x-content-type-options')).toBe('nosniff');
      expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  it('refuses /metrics without its token', async () => {
    const without = await app.yoga.fetch('http://kocmoc.test/metrics');
    expect(without.status).toBe(401);
    expect(without.headers.get('www-authenticate')).toBe('Bearer');
    expect(await without.text()).not.toMatch(/kocmoc_/);
    expect((await app.yoga.fetch('http://kocmoc.test/metrics', { headers: { authorization: 'Bearer wrong-token-0123456789abcd' } })).status).toBe(401);
    const withToken = await app.yoga.fetch('http://kocmoc.test/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toMatch(/^kocmoc_process_cpu_seconds_total/m);
  });
});

describe('NODE_ENV=production with METRICS_PORT and GRAPHQL_INTROSPECTION / GRAPHIQL', () => {
  let app: App;
  let metricsPort: number;
  beforeAll(async () => {
    app = await startTestApp({ ...PRODUCTION, METRICS_PORT: '0', GRAPHQL_INTROSPECTION: 'true', GRAPHIQL: 'true' });
    metricsPort = (await app.start()).metricsPort!;
  });
  afterAll(() => app.stop());

  it('serves /metrics on its own port only', async () => {
    expect((await app.yoga.fetch('http://kocmoc.test/metrics')).status).toBe(404);
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^kocmoc_ws_connections 0$/m);
  });

  it('allows introspection and GraphiQL when asked, with a CSP on its page', async () => {
    expect((await gql(app, getIntrospectionQuery())).errors).toBeUndefined();
    const page = await app.yoga.fetch('http://kocmoc.test/graphql', { headers: { accept: 'text/html' } });
    expect(await page.text()).toMatch(/graphiql/i);
    expect(page.headers.get('content-security-policy')).toBe(GRAPHIQL_CSP);
  });
});

describe('/metrics labels', () => {
  let app: App;
  let base: string;
  beforeAll(async () => {
    app = await startTestApp({ METRICS_OPERATION_NAMES: 'Me' });
    base = `http://127.0.0.1:${(await app.start()).port}`;
  });
  afterAll(() => app.stop());

  // The process's own series (kocmoc_process_*, kocmoc_nodejs_*) come and go with Node's kinds of GC
  // and handles, bounded by Node; everything else must not move.
  const seriesCount = async () =>
    (await (await fetch(`${base}/metrics`)).text()).split('\n').filter((line) => line && !line.startsWith('#') && !/^kocmoc_(process|nodejs)_/.test(line)).length;
  const send = (name: string, query: string) =>
    fetch(`${base}/graphql?x=secret${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, operationName: name }) });

  it('stay bounded whatever operation names and URLs clients send', async () => {
    // Every kind of answer once: a known name, unknown ones, a validation error.
    await send('Me', 'query Me { __typename }');
    await send('Warmup', 'query Warmup { __typename }');
    await send('Typo', 'query Typo { nope }');
    const before = await seriesCount();
    for (let i = 0; i < 1_000; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) => (j % 10 === 0 ? send(`Typo${i + j}`, `query Typo${i + j} { nope }`) : send(`Op${i + j}`, `query Op${i + j} { __typename }`))),
      );
    }
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(await seriesCount()).toBe(before);
    expect(text).not.toMatch(/Op17|secret|x=/);
    expect(text).toMatch(/graphql_envelop_request\{operationType="query",operationName="Me"\} 1/);
    expect(text).toMatch(/graphql_envelop_request\{operationType="query",operationName="other"\} 9\d\d/);
    expect(text).toMatch(/graphql_yoga_http_duration_count\{operationType="query",operationName="other",method="POST",statusCode="200",route="\/graphql"\}/);
  });
});
