// Findings 2 and 7 of issue #14: NUL bytes and lone surrogates reached PostgreSQL (INTERNAL, a
// stack in the log, the alerting counter up), and malformed requests answered with the parser's or
// the cursor format's text. Each attack first as the finding describes it, then what it gets now.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { capturedLogs, codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { LOGIN, SEND_MESSAGE } from './support/operations.ts';

const UPDATE_PROFILE = `mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { id bio displayName } }`;
const SEARCH = `query ($q: String!, $first: Int, $after: String) { searchUsers(query: $q, first: $first, after: $after) { edges { node { id } } } }`;
const { logs, logger } = capturedLogs('error');
let app: App;
let viewer: TestUser;
let chatId: string;

beforeAll(async () => {
  // Development mode: the finding saw the parser's text there.
  app = await startTestApp({ NODE_ENV: 'development' }, { logger });
  viewer = await registerUser(app);
  chatId = await createChat(app, viewer, { kind: 'GROUP', title: 'Hostile', memberIds: [] });
});
afterAll(async () => {
  await app?.stop();
});

/** `kocmoc_graphql_errors_total` for INTERNAL over HTTP: what alerts watch. */
async function internalErrorsCounted(): Promise<number> {
  const text = await (await app.yoga.fetch('http://kocmoc.test/metrics')).text();
  return Number(/^kocmoc_graphql_errors_total\{code="INTERNAL",transport="http"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

describe('NUL bytes and lone surrogates', () => {
  const attacks: Array<[string, () => [string, Record<string, unknown>, string | undefined], string]> = [
    ['login, signed out', () => [LOGIN, { input: { login: 'a\u0000b', password: 'whatever it is' } }, undefined], 'input.login'],
    ['updateProfile bio', () => [UPDATE_PROFILE, { input: { bio: 'about\u0000me' } }, viewer.accessToken], 'input.bio'],
    ['updateProfile displayName', () => [UPDATE_PROFILE, { input: { displayName: 'Eve\u0000' } }, viewer.accessToken], 'input.displayName'],
    ['searchUsers', () => [SEARCH, { q: 'a\u0000' }, viewer.accessToken], 'query'],
    ['sendMessage clientMessageId', () => [SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text: 'hi', clientMessageId: 'id\u0000' } }, viewer.accessToken], 'input.clientMessageId'],
    ['a lone high surrogate in a bio', () => [UPDATE_PROFILE, { input: { bio: 'half \ud83d of an emoji' } }, viewer.accessToken], 'input.bio'],
    ['a lone low surrogate in a message', () => [SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text: '\ude00' } }, viewer.accessToken], 'input.text'],
    ['NUL inside an id list', () => [`mutation ($c: ID!, $u: [ID!]!) { addChatMembers(chatId: $c, userIds: $u) { id } }`, { c: chatId, u: [viewer.id, 'x\u0000'] }, viewer.accessToken], 'userIds.1'],
  ];

  it.each(attacks)('%s: BAD_USER_INPUT naming the field, nothing INTERNAL or logged', async (_name, attack, field) => {
    const [query, variables, token] = attack();
    const internalBefore = await internalErrorsCounted();
    const result = await gql(app, query, variables, { token });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
    expect(result.errors?.[0]?.message).toMatch(/NUL characters or unpaired surrogates/);
    expect(await internalErrorsCounted()).toBe(internalBefore);
    expect(logs.filter((entry) => entry.msg === 'unexpected error')).toEqual([]);
  });

  it('still takes text with emoji (surrogate pairs) and other Unicode', async () => {
    const result = await gql(app, UPDATE_PROFILE, { input: { bio: 'Hi 😀 — Ünïcödé ✓' } }, { token: viewer.accessToken });
    expect(result.data.updateProfile.bio).toBe('Hi 😀 — Ünïcödé ✓');
  });
});

describe('malformed requests', () => {
  it('a malformed JSON body is BAD_REQUEST (400) without the parser’s text', async () => {
    const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query": "{ me { id } ',
    });
    const text = await response.text();
    expect(response.status).toBe(400);
    expect(JSON.parse(text).errors[0].extensions).toEqual({ code: 'BAD_REQUEST' });
    expect(text).not.toMatch(/originalError|SyntaxError|position|Unterminated/);
  });

  it('malformed variables in a GET are BAD_REQUEST, not INTERNAL', async () => {
    const response = await app.yoga.fetch(`http://kocmoc.test/graphql?query=${encodeURIComponent('{ vapidPublicKey }')}&variables=%7Bbad`);
    expect(response.status).toBe(400);
    expect((await response.json()).errors[0].extensions.code).toBe('BAD_REQUEST');
  });

  it.each([
    ['an Int past 2^31', SEARCH, () => ({ q: 'a', first: 2 ** 31 }), 'first'],
    ['a negative page size', SEARCH, () => ({ q: 'a', first: -1 }), 'first'],
    ['an unknown enum value', `mutation ($s: UserStatus!) { setStatus(status: $s) { id } }`, () => ({ s: 'SLEEPING' }), 's'],
    ['a wrong type inside an input', UPDATE_PROFILE, () => ({ input: { bio: { nested: true } } }), 'input.bio'],
    // A JavaScript date, but none PostgreSQL keeps as written (muteChat stored something else).
    ['a DateTime past the year 9999', `mutation ($c: ID!, $u: DateTime) { muteChat(chatId: $c, until: $u) { id } }`, () => ({ c: chatId, u: '+275760-09-13T00:00:00.000Z' }), 'u'],
  ])('%s is BAD_USER_INPUT naming it', async (_name, query, variables, field) => {
    const result = await gql(app, query, variables(), { token: viewer.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('a bad cursor says only that it is invalid', async () => {
    await sendText(app, viewer, chatId, 'one');
    const compound = Buffer.from('GPC:J:123').toString('base64');
    const nested = await gql(app, `query ($c: ID!, $a: String) { chat(id: $c) { messages(after: $a) { edges { cursor } } } }`, { c: chatId, a: compound }, { token: viewer.accessToken });
    const top = await gql(app, SEARCH, { q: 'a', after: 'zzz' }, { token: viewer.accessToken });
    for (const result of [nested, top]) {
      expect(result.errors?.[0]).toMatchObject({ message: 'The cursor is invalid.', extensions: { code: 'BAD_USER_INPUT' } });
      expect(JSON.stringify(result.errors)).not.toMatch(/compound|array|Expected|GPC/);
    }
    expect(top.errors?.[0]?.extensions?.field).toBe('after');
  });
});
