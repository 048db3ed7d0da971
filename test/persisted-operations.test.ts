// Persisted operations: automatic persisted queries (Redis and in-process stores) and trusted
// documents from a manifest, over HTTP and graphql-ws.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, registerUser, startSocketTestApp, testRedisUrl, type GraphQLResponse } from './support/helpers.ts';
import { REGISTER } from './support/operations.ts';
import { connect, subscribe } from './support/ws-helpers.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
/** A document no earlier run registered: its hash misses in a shared Redis. */
const freshQuery = () => `query Fresh_${randomBytes(6).toString('hex')} { __typename }`;
const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

async function post(app: App, body: Record<string, unknown>) {
  const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, ...((await response.json()) as GraphQLResponse) };
}

const manifestDir = mkdtempSync(join(tmpdir(), 'kocmoc-manifest-'));
const TRUSTED = 'query Trusted { __typename }';
const manifestFile = join(manifestDir, 'persisted-documents.json');
writeFileSync(manifestFile, JSON.stringify({ [sha256(TRUSTED)]: TRUSTED, [sha256(REGISTER)]: REGISTER }));
afterAll(() => rmSync(manifestDir, { recursive: true, force: true }));

describe.each([
  { store: 'Redis', env: () => ({ REDIS_URL: testRedisUrl() }), inRedis: true },
  { store: 'memory', env: () => ({}), inRedis: false },
])('automatic persisted queries ($store store)', ({ env, inRedis }) => {
  let app: App;
  let url: string;
  beforeAll(async () => {
    ({ app, url } = await startSocketTestApp({ ...env(), PERSISTED_OPERATIONS_FILE: manifestFile }));
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('misses an unknown hash, registers the document, then runs it from its hash alone', async () => {
    const query = freshQuery();
    const extensions = persisted(sha256(query));
    const miss = await post(app, { extensions });
    expect(miss.status).toBe(404);
    expect(codeOf(miss)).toBe('PERSISTED_QUERY_NOT_FOUND');
    const registered = await post(app, { query, extensions });
    expect(registered).toEqual({ status: 200, data: { __typename: 'Query' } });
    expect(app.services.redis === undefined ? null : await app.services.redis.get(`kocmoc:apq:${sha256(query)}`)).toBe(inRedis ? query : null);
    const hit = await post(app, { extensions });
    expect(hit).toEqual({ status: 200, data: { __typename: 'Query' } });
  });

  it('refuses to register a document under a hash that is not its own', async () => {
    const result = await post(app, { query: freshQuery(), extensions: persisted(sha256('something else')) });
    expect(codeOf(result)).toBe('PERSISTED_QUERY_MISMATCH');
  });

  it('runs the manifest documents by id, and any document still', async () => {
    expect((await post(app, { extensions: persisted(sha256(TRUSTED)) })).data).toEqual({ __typename: 'Query' });
    expect((await post(app, { query: '{ __typename }' })).data).toEqual({ __typename: 'Query' });
  });

  it('runs a registered document from its hash over graphql-ws', async () => {
    const query = freshQuery();
    await post(app, { query, extensions: persisted(sha256(query)) });
    const user = await registerUser(app);
    const connection = connect(url, user.accessToken);
    try {
      const hit = await new Promise<unknown>((resolve, reject) => {
        connection.client.subscribe({ query: '', extensions: persisted(sha256(query)) }, { next: resolve, error: reject, complete: () => {} });
      });
      expect(hit).toEqual({ data: { __typename: 'Query' } });
      const miss = subscribe(connection, '', {});
      // An empty query without a hash asks for one.
      expect(codeOf(await miss.next())).toBe('PERSISTED_QUERY_ID_REQUIRED');
    } finally {
      await connection.dispose();
    }
  });
});

describe('trusted documents only (PERSISTED_OPERATIONS_ONLY=true)', () => {
  let app: App;
  let url: string;
  beforeAll(async () => {
    ({ app, url } = await startSocketTestApp({ REDIS_URL: testRedisUrl(), PERSISTED_OPERATIONS_FILE: manifestFile, PERSISTED_OPERATIONS_ONLY: 'true' }));
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('runs a document of the manifest by its id', async () => {
    expect(await post(app, { extensions: persisted(sha256(TRUSTED)) })).toEqual({ status: 200, data: { __typename: 'Query' } });
  });

  it('refuses an unknown document id, a query text and a registration, each with its code', async () => {
    const unknown = await post(app, { extensions: persisted(sha256(freshQuery())) });
    expect([unknown.status, codeOf(unknown)]).toEqual([404, 'PERSISTED_QUERY_NOT_IN_LIST']);
    const text = await post(app, { query: '{ __typename }' });
    expect([text.status, codeOf(text)]).toEqual([400, 'PERSISTED_QUERY_ONLY']);
    const query = freshQuery();
    const registration = await post(app, { query, extensions: persisted(sha256(query)) });
    expect(codeOf(registration)).toBe('PERSISTED_QUERY_ONLY');
    expect(codeOf(await post(app, { extensions: persisted(sha256(query)) }))).toBe('PERSISTED_QUERY_NOT_IN_LIST');
  });

  it('refuses a query text over graphql-ws and runs a manifest document there', async () => {
    const name = `u_${randomBytes(5).toString('hex')}`;
    const input = { email: `${name}@example.com`, username: name, password: 'correct horse battery staple', displayName: name };
    const registered = await post(app, { variables: { input }, extensions: persisted(sha256(REGISTER)) });
    const connection = connect(url, registered.data!.register.accessToken);
    try {
      expect(codeOf(await subscribe(connection, '{ __typename }').next())).toBe('PERSISTED_QUERY_ONLY');
      const trusted = await new Promise<unknown>((resolve, reject) => {
        connection.client.subscribe({ query: '', extensions: persisted(sha256(TRUSTED)) }, { next: resolve, error: reject, complete: () => {} });
      });
      expect(trusted).toEqual({ data: { __typename: 'Query' } });
    } finally {
      await connection.dispose();
    }
  });

  it('fails at startup without a manifest', async () => {
    await expect(startSocketTestApp({ PERSISTED_OPERATIONS_ONLY: 'true' })).rejects.toThrow(/PERSISTED_OPERATIONS_FILE: required/);
  });
});
