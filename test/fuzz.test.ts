// The schema-driven fuzz test of issue #14: every root query, mutation and subscription field of the
// executable schema, with hostile variable sets built from its argument types (support/hostile-values.ts),
// sent through yoga.fetch and through graphql-ws, signed in and anonymous. No answer may be
// INTERNAL, a 5xx, carry a stack trace or take longer than 2 s, and the server answers `me` after.
import { GraphQLError, type GraphQLField, type GraphQLObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { schema } from '../src/schema/index.ts';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { CASES_PER_FIELD, deepObject, knownIds, operationFor, variableSets } from './support/hostile-values.ts';
import { LOGIN } from './support/operations.ts';
import { connect, type Connection } from './support/ws-helpers.ts';

const TIME_LIMIT_MS = 2_000;
/** A subscription that has nothing to say yet is live: that is its answer. */
const LIVE_WAIT_MS = 150;
/** Traces of internals an answer must never carry. */
const INTERNALS = /\bat \S+ \(|node_modules|\.[cm]?[jt]s:\d+:\d+|"stack"|originalError|Prisma|PostgreSQL|invalid byte sequence/;

type Operation = 'query' | 'mutation' | 'subscription';
interface Answer {
  ms: number;
  status?: number;
  body: string;
  closeCode?: number;
}

let app: App;
let url: string;
let fuzzer: TestUser;
let socket: Connection | undefined;
let closeCode: number | undefined;
let cases = 0;
const problems: string[] = [];
const maxRequestBytes = () => app.services.config.http.maxRequestBytes;

beforeAll(async () => {
  app = await startTestApp({ PUSH_ENABLED: 'false' });
  url = (await app.start()).url;
  fuzzer = await registerUser(app);
  const partner = await registerUser(app);
  const chatId = await createChat(app, fuzzer, { kind: 'GROUP', title: 'Fuzz', memberIds: [partner.id] });
  const message = await sendText(app, partner, chatId, 'something to point at');
  knownIds.push(fuzzer.id, partner.id, chatId, message.id);
});
afterAll(async () => {
  await socket?.dispose();
  await app?.stop();
});

const summary = (variables: Record<string, unknown>) => {
  const text = JSON.stringify(variables, (_key, value) => (typeof value === 'string' && value.length > 40 ? `${value.slice(0, 20)}…(${value.length})` : value));
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
};

function judge(where: string, variables: Record<string, unknown>, answer: Answer) {
  cases++;
  const at = `${where} ${summary(variables)}`;
  if (answer.ms > TIME_LIMIT_MS) problems.push(`${at}: took ${Math.round(answer.ms)} ms`);
  if (answer.status !== undefined && answer.status >= 500) problems.push(`${at}: HTTP ${answer.status}`);
  if (/"code":"INTERNAL"/.test(answer.body)) problems.push(`${at}: INTERNAL ${answer.body.slice(0, 300)}`);
  if (INTERNALS.test(answer.body)) problems.push(`${at}: internals in ${answer.body.slice(0, 300)}`);
  if (answer.closeCode === 1011) problems.push(`${at}: socket closed with 1011 (internal error)`);
}

async function overHttp(query: string, variables: Record<string, unknown>, token: string | null, operation: Operation): Promise<Answer> {
  const started = performance.now();
  const controller = new AbortController();
  const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      // Subscriptions over HTTP are server-sent events; a live one is cut after its first moments.
      accept: operation === 'subscription' ? 'text/event-stream' : 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
    signal: controller.signal,
  });
  let body: string;
  if (response.headers.get('content-type')?.includes('text/event-stream')) {
    const reader = response.body!.getReader();
    const first = await Promise.race([reader.read(), new Promise<null>((resolve) => setTimeout(() => resolve(null), LIVE_WAIT_MS))]);
    body = first?.value ? new TextDecoder().decode(first.value) : '';
    // Not awaited: the stream ends once the server notices, which is not this case's answer.
    void reader.cancel().catch(() => {});
    controller.abort();
  } else {
    body = await response.text();
  }
  return { ms: performance.now() - started, status: response.status, body };
}

/** The signed-in socket, reconnected (and signed in again) if a case ended it; concurrent cases share one. */
let connecting: Promise<Connection> | undefined;
function signedInSocket(): Promise<Connection> {
  if (socket && closeCode === undefined) return Promise.resolve(socket);
  connecting ??= (async () => {
    await socket?.dispose();
    await ensureSignedIn();
    const next = connect(url, fuzzer.accessToken);
    void next.closed.then((code) => {
      if (socket === next) closeCode = code;
    });
    await next.connected;
    closeCode = undefined;
    socket = next;
    return next;
  })().finally(() => (connecting = undefined));
  return connecting;
}

function overWs(connection: Connection, query: string, variables: Record<string, unknown>, operation: Operation): Promise<Answer> {
  return new Promise((resolve) => {
    const started = performance.now();
    const results: unknown[] = [];
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      unsubscribe();
      resolve({ ms: performance.now() - started, body: JSON.stringify(results), closeCode });
    };
    const timer = setTimeout(finish, operation === 'subscription' ? LIVE_WAIT_MS : TIME_LIMIT_MS + 500);
    const unsubscribe = connection.client.subscribe(
      { query, variables },
      {
        next: (value) => {
          results.push(value);
          finish();
        },
        error: (error) => {
          results.push(Array.isArray(error) || error instanceof GraphQLError ? error : { closed: (error as { code?: number }).code ?? String(error) });
          finish();
        },
        complete: finish,
      },
    );
  });
}

/** Hostile connection parameters for anonymous sockets: the server closes them with 4401 before any operation runs. */
const ANONYMOUS_PARAMS: Array<Record<string, unknown>> = [
  {},
  { authorization: 'Bearer \u0000' },
  { authorization: `Bearer ${'x'.repeat(100_000)}` },
  { authorization: deepObject(50) },
  { authorization: 42 },
  { Authorization: 'Bearer a.b.c' },
];

function anonymousOverWs(query: string, variables: Record<string, unknown>, params: Record<string, unknown>): Promise<Answer> {
  const started = performance.now();
  const connection = connect(url, null, params);
  const answer = new Promise<Answer>((resolve) => {
    connection.client.subscribe({ query, variables }, { next: () => {}, error: () => {}, complete: () => {} });
    void connection.closed.then((code) => resolve({ ms: performance.now() - started, body: '', closeCode: code }));
    setTimeout(() => resolve({ ms: performance.now() - started, body: 'still open' }), TIME_LIMIT_MS + 500);
  });
  return answer.finally(() => connection.dispose());
}

/** After a case that logged the fuzzer out (logout, an ended session), sign in again. */
async function ensureSignedIn() {
  const me = await gql(app, '{ me { id } }', {}, { token: fuzzer.accessToken });
  if (me.data?.me) return;
  const login = await gql(app, LOGIN, { input: { login: fuzzer.username, password: fuzzer.password } });
  if (!login.data?.login) throw new Error(`cannot sign the fuzzer in again: ${JSON.stringify(login.errors)}`);
  fuzzer.accessToken = login.data.login.accessToken;
}

const rootFields = (): Array<[Operation, GraphQLField<unknown, unknown>]> =>
  (
    [
      ['query', schema.getQueryType()],
      ['mutation', schema.getMutationType()],
      ['subscription', schema.getSubscriptionType()],
    ] as Array<[Operation, GraphQLObjectType | null | undefined]>
  ).flatMap(([operation, type]) => Object.values(type?.getFields() ?? {}).map((field) => [operation, field] as [Operation, GraphQLField<unknown, unknown>]));

async function fuzzField(operation: Operation, field: GraphQLField<unknown, unknown>) {
  const query = operationFor(operation, field);
  const httpSets = variableSets(field, { bigBytes: 1_000_000, justUnderBytes: maxRequestBytes() - 8 * 1024 });
  // The same sets with large strings cut to fit a WebSocket frame (256 KiB).
  const wsSets = variableSets(field, { bigBytes: 200_000, justUnderBytes: 250_000 });
  expect(httpSets.length).toBeGreaterThanOrEqual(20);
  // Past the body limit as well: 413 is a fine answer.
  const oversized = { ...httpSets[0], padding: 'x'.repeat(maxRequestBytes() + 1) };
  await ensureSignedIn();
  const run = async (variables: Record<string, unknown>, index: number) => {
    judge(`http/signed-in ${field.name}`, variables, await overHttp(query, variables, fuzzer.accessToken, operation));
    judge(`http/anonymous ${field.name}`, variables, await overHttp(query, variables, null, operation));
    const wsVariables = wsSets[index]!;
    judge(`ws/signed-in ${field.name}`, wsVariables, await overWs(await signedInSocket(), query, wsVariables, operation));
    if (index < 4) {
      const anonymous = await anonymousOverWs(query, wsVariables, ANONYMOUS_PARAMS[(index + field.name.length) % ANONYMOUS_PARAMS.length]!);
      judge(`ws/anonymous ${field.name}`, wsVariables, anonymous);
      if (anonymous.closeCode !== 4401) problems.push(`ws/anonymous ${field.name}: socket not refused with 4401 (${anonymous.closeCode ?? anonymous.body})`);
    }
  };
  if (operation === 'subscription') {
    // Each live one waits LIVE_WAIT_MS: all at once.
    await Promise.all(httpSets.map((variables, index) => run(variables, index)));
  } else {
    for (const [index, variables] of httpSets.entries()) await run(variables, index);
  }
  const tooLarge = await overHttp(query, oversized, fuzzer.accessToken, operation);
  judge(`http/oversized ${field.name}`, {}, tooLarge);
  if (tooLarge.status !== 413) problems.push(`http/oversized ${field.name}: HTTP ${tooLarge.status}, not 413`);
}

describe('fuzzing every root field from the schema', () => {
  it(`answers ${CASES_PER_FIELD}+ hostile variable sets per field without INTERNAL, 5xx, stack traces or slowness`, { timeout: 180_000 }, async () => {
    const fields = rootFields();
    expect(fields.length).toBeGreaterThan(40);
    const started = performance.now();
    for (const [operation, field] of fields) await fuzzField(operation, field);
    console.log(`fuzz: ${cases} cases over ${fields.length} root fields in ${Math.round((performance.now() - started) / 1000)} s, ${problems.length} problems`);
    expect(problems).toEqual([]);
  });

  it('closes a socket that sends a 1 MB message (1009, past the frame limit), and takes new ones', async () => {
    const connection = await signedInSocket();
    const started = performance.now();
    const answer = await overWs(connection, 'query ($q: String!) { searchUsers(query: $q) { __typename } }', { q: 'x'.repeat(1_000_000) }, 'query');
    expect(await connection.closed).toBe(1009);
    expect(performance.now() - started).toBeLessThan(TIME_LIMIT_MS);
    expect(answer.body).not.toMatch(INTERNALS);
  });

  it('still answers `me` afterwards, over HTTP and over graphql-ws', async () => {
    await ensureSignedIn();
    expect((await gql(app, '{ me { id } }', {}, { token: fuzzer.accessToken })).data.me.id).toBe(fuzzer.id);
    const answer = await overWs(await signedInSocket(), '{ me { id } }', {}, 'query');
    expect(JSON.parse(answer.body)[0].data.me.id).toBe(fuzzer.id);
  });
});
