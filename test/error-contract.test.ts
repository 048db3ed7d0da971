// The error contract, walked: every code in README's "Errors" table is produced here through the
// real HTTP pipeline, with the HTTP status the table gives and the extensions it promises; so is
// every UNAUTHENTICATED reason. A code added to the table without a case here fails, and so does a
// case whose code the table does not list. On a database of its own: maintenance mode and the
// outage would reach every app sharing one.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import type { App } from '../src/server/app.ts';
import { databaseOutages, type DatabaseOutage } from './support/faults.ts';
import { createChat, gql, onlyRateLimits, registerUser, scratchDatabaseUrl, startTestApp, type TestUser } from './support/helpers.ts';
import { LOGIN, LOGOUT, REGISTER, SEND_MESSAGE } from './support/operations.ts';

const ADMIN_TOKEN = 'error-contract-admin-token-0123456789';
const scratch = scratchDatabaseUrl('kocmoc_error_contract');
let outage: DatabaseOutage;
let app: App;
/** The same database, serving trusted documents only (PERSISTED_OPERATIONS_ONLY). */
let trustedOnly: App;
let user: TestUser;
const manifestDir = mkdtempSync(join(tmpdir(), 'kocmoc-error-contract-'));
const TRUSTED = 'query Trusted { __typename }';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const persisted = (sha256Hash: string) => ({ persistedQuery: { version: 1, sha256Hash } });

/** The rows of the README table that follows `heading` inside the "Errors" section: first cell's code, second cell. */
function readmeTable(heading: string): Array<{ code: string; second: string }> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Errors'));
  const table = section.slice(section.indexOf(heading)).split('\n\n')[1]!;
  return [...table.matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((row) => ({ code: row[1]!, second: row[2]! }));
}

const CODES = readmeTable('produces every code of this table');
const REASONS = readmeTable('`UNAUTHENTICATED` always carries');

interface Produced {
  status: number;
  error: { message: string; extensions: Record<string, any> };
}

async function request(init: { method?: string; body?: string; headers?: Record<string, string>; path?: string; to?: App }): Promise<Produced> {
  const response = await (init.to ?? app).yoga.fetch(`http://kocmoc.test${init.path ?? '/graphql'}`, {
    method: init.method ?? 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...init.headers },
    body: init.body,
  });
  const body = (await response.json()) as { errors?: Produced['error'][] };
  if (!body.errors?.[0]) throw new Error(`expected an error, got ${JSON.stringify(body)}`);
  return { status: response.status, error: body.errors[0] };
}

const post = (query: string, variables: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  request({ body: JSON.stringify({ query, variables }), headers });
const asUser = (query: string, variables: Record<string, unknown> = {}, token = user.accessToken) => post(query, variables, { authorization: `Bearer ${token}` });

const producers: Record<string, () => Promise<Produced>> = {
  UNAUTHENTICATED: () => post('{ me { id } }'),
  FORBIDDEN: () => asUser('{ maintenance { enabled } }'),
  NOT_FOUND: () => asUser('query ($id: ID!) { call(id: $id) { id } }', { id: '0193a5c4-0000-7000-8000-000000000000' }),
  BAD_USER_INPUT: async () => {
    const produced = await post(REGISTER, { input: { email: 'not-an-email', username: '!', password: 'correct horse battery staple', displayName: 'x'.repeat(65) } });
    // Every invalid field at once, the first one's as `field`.
    expect(produced.error.extensions.fields.map((problem: { field: string }) => problem.field)).toEqual(['input.email', 'input.username', 'input.displayName']);
    expect(produced.error.extensions.field).toBe('input.email');
    for (const problem of produced.error.extensions.fields) expect(problem.message).toEqual(expect.any(String));
    return produced;
  },
  CONFLICT: () => post(REGISTER, { input: { email: `other-${user.email}`, username: user.username, password: 'correct horse battery staple', displayName: 'Twin' } }),
  RATE_LIMITED: async () => {
    const limited = await startTestApp({ DATABASE_URL: scratch.url, ...onlyRateLimits({ RATE_LIMIT_SEARCH: '1/1m' }) });
    try {
      const searcher = await registerUser(limited);
      const search = () => gql(limited, '{ searchUsers(query: "a") { edges { cursor } } }', {}, { token: searcher.accessToken });
      await search();
      const refused = await search();
      expect(refused.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThan(0);
      return { status: refused.response.status, error: refused.errors![0]! as Produced['error'] };
    } finally {
      await limited.stop();
    }
  },
  MAINTENANCE: async () => {
    const admin = { headers: { 'x-admin-token': ADMIN_TOKEN } };
    const setMaintenance = 'mutation ($on: Boolean!) { setMaintenanceMode(enabled: $on) { enabled } }';
    expect((await gql(app, setMaintenance, { on: true }, admin)).data?.setMaintenanceMode.enabled).toBe(true);
    try {
      return await asUser('mutation { setStatus(status: BUSY) { id } }');
    } finally {
      expect((await gql(app, setMaintenance, { on: false }, admin)).data?.setMaintenanceMode.enabled).toBe(false);
    }
  },
  QUERY_TOO_COMPLEX: () => asUser(`{ ${Array.from({ length: 16 }, (_, index) => `a${index}: me { id }`).join(' ')} }`),
  UNAVAILABLE: async () => {
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'During the outage', memberIds: [] });
    await outage.begin();
    try {
      return await asUser(SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text: 'during the outage' } });
    } finally {
      await outage.end();
    }
  },
  INTERNAL: async () => {
    const { presence } = app.services;
    const onlineUserIds = presence.onlineUserIds;
    presence.onlineUserIds = () => Promise.reject(new Error('presence store unreachable'));
    try {
      return await asUser('query ($id: ID!) { user(id: $id) { status } }', { id: user.id });
    } finally {
      presence.onlineUserIds = onlineUserIds;
    }
  },
  GRAPHQL_PARSE_FAILED: () => post('{ me { id '),
  GRAPHQL_VALIDATION_FAILED: () => post('{ noSuchField }'),
  OPERATION_RESOLUTION_FAILURE: () => request({ body: JSON.stringify({ query: 'query A { __typename }', operationName: 'B' }) }),
  BAD_REQUEST: () => request({ body: JSON.stringify({ variables: {} }) }),
  METHOD_NOT_ALLOWED: () => request({ method: 'PUT', body: '{}' }),
  NOT_ACCEPTABLE: () => request({ body: JSON.stringify({ query: '{ __typename }' }), headers: { accept: 'text/csv' } }),
  UNSUPPORTED_MEDIA_TYPE: () => request({ body: '{ __typename }', headers: { 'content-type': 'text/plain' } }),
  PERSISTED_QUERY_NOT_FOUND: () => request({ body: JSON.stringify({ extensions: persisted(sha256(`query Unknown_${randomBytes(6).toString('hex')} { __typename }`)) }) }),
  PERSISTED_QUERY_MISMATCH: () => request({ body: JSON.stringify({ query: '{ __typename }', extensions: persisted(sha256('another document')) }) }),
  PERSISTED_QUERY_ONLY: () => request({ to: trustedOnly, body: JSON.stringify({ query: TRUSTED }) }),
  PERSISTED_QUERY_NOT_IN_LIST: () => request({ to: trustedOnly, body: JSON.stringify({ extensions: persisted(sha256('query Other { __typename }')) }) }),
  PERSISTED_QUERY_ID_REQUIRED: () => request({ to: trustedOnly, body: JSON.stringify({ variables: {} }) }),
};

const reasonProducers: Record<string, () => Promise<Produced>> = {
  TOKEN_EXPIRED: async () => {
    const { sub, sid } = decodeJwt(user.accessToken) as { sub: string; sid: string };
    const { token } = await app.services.tokens.issueAccessToken({ userId: sub, sessionId: sid }, new Date(Date.now() - 24 * 3600_000));
    return asUser('{ me { id } }', {}, token);
  },
  TOKEN_INVALID: () => asUser('{ me { id } }', {}, 'not.a.token'),
  SESSION_ENDED: async () => {
    const leaver = await registerUser(app);
    await gql(app, LOGOUT, {}, { token: leaver.accessToken });
    return asUser('{ me { id } }', {}, leaver.accessToken);
  },
  SIGN_IN_REQUIRED: () => post('{ me { id } }'),
  WRONG_CREDENTIALS: () => post(LOGIN, { input: { login: user.username, password: 'not the password at all' } }),
};

beforeAll(async () => {
  await ensureDatabase(scratch.url);
  await applyMigrations({ databaseUrl: scratch.url });
  outage = await databaseOutages(scratch.url);
  app = await startTestApp({ DATABASE_URL: scratch.url, ADMIN_TOKEN, PUSH_ENABLED: 'false' });
  const manifestFile = join(manifestDir, 'persisted-documents.json');
  writeFileSync(manifestFile, JSON.stringify({ [sha256(TRUSTED)]: TRUSTED }));
  trustedOnly = await startTestApp({ DATABASE_URL: scratch.url, PUSH_ENABLED: 'false', PERSISTED_OPERATIONS_FILE: manifestFile, PERSISTED_OPERATIONS_ONLY: 'true' });
  user = await registerUser(app);
});
afterAll(async () => {
  await outage?.close();
  await app?.stop();
  await trustedOnly?.stop();
  rmSync(manifestDir, { recursive: true, force: true });
  await scratch.drop();
});

describe('the error contract in README', () => {
  it('lists every code this test produces, and no other', () => {
    expect(CODES.map((row) => row.code).sort()).toEqual(Object.keys(producers).sort());
    expect(REASONS.map((row) => row.code).sort()).toEqual(Object.keys(reasonProducers).sort());
  });

  it.each(CODES)('$code: produced, with an HTTP status the table lists', async ({ code, second }) => {
    const { status, error } = await producers[code]!();
    expect(error.extensions.code).toBe(code);
    const statuses = [...second.matchAll(/\b[1-5]\d\d\b/g)].map((match) => Number(match[0]));
    expect(statuses).toContain(status);
  });

  it.each(REASONS)('UNAUTHENTICATED with reason $code', async ({ code }) => {
    const { status, error } = await reasonProducers[code]!();
    expect(status).toBe(200);
    expect(error.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: code });
  });

  it('a variable graphql-js refuses is BAD_USER_INPUT naming its path, with HTTP 400', async () => {
    const scalar = await post('query ($n: Int) { searchUsers(query: "a", first: $n) { edges { cursor } } }', { n: 'abc' });
    expect(scalar.status).toBe(400);
    expect(scalar.error.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'n', fields: [{ field: 'n', message: scalar.error.message }] });
    const nested = await post(LOGIN, { input: { login: 5, password: 'x' } });
    expect(nested.status).toBe(400);
    expect(nested.error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.login' });
  });

  it('HTTP-level refusals keep their status and say why in JSON', async () => {
    const put = await request({ method: 'PUT', body: '{}' });
    expect(put).toMatchObject({ status: 405, error: { extensions: { code: 'METHOD_NOT_ALLOWED' } } });
    const mutationOverGet = await app.yoga.fetch(`http://kocmoc.test/graphql?query=${encodeURIComponent('mutation { logout }')}`, { headers: { accept: 'application/json' } });
    expect(mutationOverGet.status).toBe(405);
    expect(mutationOverGet.headers.get('allow')).toBe('POST');
    expect((await mutationOverGet.json()).errors[0].extensions).toEqual({ code: 'METHOD_NOT_ALLOWED' });
    const refused = await app.yoga.fetch('http://kocmoc.test/graphql', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/);
    const unacceptable = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/csv' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(unacceptable.status).toBe(406);
    expect(unacceptable.headers.get('accept')).toMatch(/application\/graphql-response\+json/);
  });
});
