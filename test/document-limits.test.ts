// Document limits (aliases, depth, tokens, directives, cost, password mutations, uploads), over HTTP
// and graphql-ws, refused before anything runs with QUERY_TOO_COMPLEX and the limit named.
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { sendMessage } from '../src/messages/messages.ts';
import { createChat, gql, registerUser, startUploadTestApp, type TestUser } from './support/helpers.ts';
import { openConnections, subscribe } from './support/ws-helpers.ts';

let app: App;
let base: string;
let stop: () => Promise<void>;
let alice: TestUser;
let bob: TestUser;
let chatId: string;
let messageTableQueries = 0;
const sockets = openConnections();

beforeAll(async () => {
  // Reads of messages, to tell a refused query from one that ran.
  const onQuery = (sql: string) => void (/FROM "public"."Message"/.test(sql) && (messageTableQueries += 1));
  ({ app, base, stop } = await startUploadTestApp({}, { onQuery }));
  alice = await registerUser(app);
  bob = await registerUser(app);
  chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
});

afterAll(async () => {
  await sockets.closeAll();
  await stop();
});

const errorOf = (result: { errors?: Array<{ message: string; extensions?: Record<string, any> }> }) => result.errors?.[0];

const aliases = (count: number) => `{ ${Array.from({ length: count }, (_, i) => `a${i}: me { id }`).join(' ')} }`;

/** `chat → messages → edges → node`, then `replyTo` until the selection is `depth` fields deep. */
function nested(depth: number) {
  const replies = depth - 5;
  return `query ($c: ID!) { chat(id: $c) { messages(first: 1) { edges { node { ${'replyTo { '.repeat(replies)}id${' }'.repeat(replies)} } } } } }`;
}

describe('aliases, depth, tokens, directives', () => {
  it('runs 15 aliases and refuses the 16th', async () => {
    const fifteen = await gql(app, aliases(15), {}, { token: alice.accessToken });
    expect(fifteen.errors).toBeUndefined();
    expect(Object.keys(fifteen.data)).toHaveLength(15);
    const sixteen = await gql(app, aliases(16), {}, { token: alice.accessToken });
    expect(sixteen.data ?? null).toBeNull();
    expect(errorOf(sixteen)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'aliases' });
    expect(errorOf(sixteen)?.message).toMatch(/15 aliases/);
  });

  it('runs 10 levels and refuses the 11th', async () => {
    const ten = await gql(app, nested(10), { c: chatId }, { token: alice.accessToken });
    expect(ten.errors).toBeUndefined();
    expect(ten.data.chat.messages.edges).toEqual([]);
    const eleven = await gql(app, nested(11), { c: chatId }, { token: alice.accessToken });
    expect(errorOf(eleven)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'depth' });
    expect(errorOf(eleven)?.message).toMatch(/10 levels/);
  });

  it('counts the fields inside fragments, not the fragment spreads themselves', async () => {
    // Ten levels of fields, reached through three fragments (as codegen and gql.tada write them).
    const fragments = `query ($c: ID!) { chat(id: $c) { ...ChatPart } }
      fragment ChatPart on Chat { messages(first: 1) { edges { node { ...MessagePart } } } }
      fragment MessagePart on Message { replyTo { replyTo { ...ReplyPart } } }
      fragment ReplyPart on Message { replyTo { replyTo { replyTo { id } } } }`;
    const ten = await gql(app, fragments, { c: chatId }, { token: alice.accessToken });
    expect(ten.errors).toBeUndefined();
    const eleven = await gql(app, fragments.replace('{ replyTo { replyTo { replyTo { id } } } }', '{ replyTo { replyTo { replyTo { replyTo { id } } } } }'), { c: chatId }, { token: alice.accessToken });
    expect(errorOf(eleven)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'depth' });
  });

  it("leaves introspection's own depth alone (where introspection is on)", async () => {
    const result = await gql(app, getIntrospectionQuery());
    expect(result.errors).toBeUndefined();
    expect(result.data.__schema.queryType.name).toBe('Query');
  });

  it('refuses a document over 2,000 tokens while parsing it', async () => {
    const result = await gql(app, `{ me { ${'id '.repeat(2_000)} } }`, {}, { token: alice.accessToken });
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'tokens' });
    expect(errorOf(result)?.message).toMatch(/2000 tokens/);
  });

  it('refuses more than 50 directives', async () => {
    const result = await gql(app, `{ me { ${'id @include(if: true) '.repeat(51)} } }`, {}, { token: alice.accessToken });
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'directives' });
  });

  it('counts refusals in kocmoc_graphql_errors_total', async () => {
    await gql(app, aliases(16), {}, { token: alice.accessToken });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const count = Number(/^kocmoc_graphql_errors_total\{code="QUERY_TOO_COMPLEX",transport="http"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(count).toBeGreaterThanOrEqual(5);
  });
});

describe('cost', () => {
  // The issue's query: chat → messages(first: 100) three levels deep, about a million nodes.
  const MILLION = `query ($c: ID!) { chat(id: $c) { messages(first: 100) { edges { node { chat { messages(first: 100) { edges { node {
    chat { messages(first: 100) { edges { node { id text } } } } } } } } } } } } }`;
  // Within the depth limit, but 10,000 messages: only its cost refuses it.
  const TEN_THOUSAND = `query ($c: ID!) { chat(id: $c) { messages(first: 100) { edges { node { chat { messages(first: 100) { edges { node { id } } } } } } } } }`;

  it('refuses the million-node query before it runs', async () => {
    const before = messageReads();
    const result = await gql(app, MILLION, { c: chatId }, { token: alice.accessToken });
    expect(result.data ?? null).toBeNull();
    expect(errorOf(result)?.extensions?.code).toBe('QUERY_TOO_COMPLEX');
    const costly = await gql(app, TEN_THOUSAND, { c: chatId }, { token: alice.accessToken });
    expect(costly.data ?? null).toBeNull();
    expect(errorOf(costly)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
    expect(errorOf(costly)?.message).toMatch(/costs 30401, over the cost limit of 5000/);
    expect(messageReads()).toBe(before);
    // The same chat's messages, asked for within the limit, are read: the count above can move.
    await gql(app, `query ($c: ID!) { chat(id: $c) { messages(first: 5) { edges { node { id } } } } }`, { c: chatId }, { token: alice.accessToken });
    expect(messageReads()).toBeGreaterThan(before);
  });

  it('counts page sizes passed as variables', async () => {
    const query = `query ($c: ID!, $n: Int) { chat(id: $c) { messages(first: $n) { edges { node { chat { messages(first: $n) { edges { node { id } } } } } } } } }`;
    const small = await gql(app, query, { c: chatId, n: 10 }, { token: alice.accessToken });
    expect(small.errors).toBeUndefined();
    const large = await gql(app, query, { c: chatId, n: 100 }, { token: alice.accessToken });
    expect(errorOf(large)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
  });

  it('refuses it over graphql-ws too, as an error message on a socket that stays open', async () => {
    const connection = sockets.connect(`${base}/graphql`, alice.accessToken);
    const refused = subscribe(connection, TEN_THOUSAND, { c: chatId });
    const result = await refused.next();
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
    const fine = subscribe(connection, '{ me { id } }');
    expect((await fine.next()).data).toEqual({ me: { id: alice.id } });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^kocmoc_graphql_errors_total\{code="QUERY_TOO_COMPLEX",transport="ws"\} [1-9]/m);
  });

  it('refuses a subscription whose selection costs too much before it starts', async () => {
    const pages = ['a', 'b', 'c'].map((alias) => `${alias}: messages(first: 100) { edges { node { readBy { id } } } }`).join(' ');
    const connection = sockets.connect(`${base}/graphql`, alice.accessToken);
    const refused = subscribe(connection, `subscription { messageEvents { message { chat { ${pages} } } } }`);
    expect((await refused.next()).errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'cost' });
    await refused.completed;
  });
});

const messageReads = () => messageTableQueries;

describe('the heaviest allowed query', () => {
  // 12 chats of 100 messages, each with its text and sender: a cost of 4,836 of 5,000.
  const HEAVIEST = `{ chats(first: 12) { edges { node { messages(first: 100) { edges { node { text sender { username } } } } } } } }`;

  it('keeps the server answering: GET /health answers within 100 ms while it runs', async () => {
    const owner = await registerUser(app);
    const others = await Promise.all(Array.from({ length: 12 }, () => registerUser(app)));
    const chats = await Promise.all(others.map((other) => createChat(app, owner, { kind: 'DIRECT', memberIds: [other.id] })));
    for (const id of chats) {
      for (let i = 0; i < 100; i += 20) {
        await Promise.all(Array.from({ length: 20 }, (_, j) => sendMessage(app.services, owner.id, { chatId: id, kind: 'TEXT', text: `message ${i + j} ${'x'.repeat(200)}` })));
      }
    }
    const heaviest = () =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.accessToken}` },
        body: JSON.stringify({ query: HEAVIEST }),
      });
    // Once first, as a running server has: the first run of any code pays for its compilation.
    await (await heaviest()).text();
    /** Runs the query once, probing /health until it answers: the probes' latencies, and the query's result. */
    const probeWhileRunning = async () => {
      let done = false;
      const query = heaviest().then(async (response) => {
        done = true;
        return (await response.json()) as { data?: any; errors?: unknown[] };
      });
      const probes: number[] = [];
      while (!done) {
        const sent = performance.now();
        const health = await fetch(`${base}/health`);
        if (!done) probes.push(performance.now() - sent);
        expect(health.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return { probes, result: await query };
    };
    // Up to three rounds: other processes on a shared host can take the CPU away from any probe, but a
    // server that one query blocks for over 100 ms misses in every round.
    const rounds: number[][] = [];
    for (let round = 0; round < 3 && !rounds.some((probes) => Math.max(...probes) < 100); round += 1) {
      const { probes, result } = await probeWhileRunning();
      expect(result.errors).toBeUndefined();
      expect(result.data.chats.edges).toHaveLength(12);
      expect(result.data.chats.edges.every((edge: any) => edge.node.messages.edges.length === 100)).toBe(true);
      // Probes were answered while the query ran.
      expect(probes.length).toBeGreaterThan(0);
      rounds.push(probes);
    }
    const best = Math.min(...rounds.map((probes) => Math.max(...probes)));
    expect(best, `slowest probe per round: ${rounds.map((probes) => Math.round(Math.max(...probes))).join(', ')} ms`).toBeLessThan(100);
  });
});

describe('mutations that hash a password', () => {
  it('may appear only once per document', async () => {
    const input = { login: alice.username, password: 'wrong password!' };
    const twice = `mutation ($i: LoginInput!) { a: login(input: $i) { accessToken } b: login(input: $i) { accessToken } }`;
    const result = await gql(app, twice, { i: input });
    expect(result.data ?? null).toBeNull();
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'passwordMutations' });
    expect(errorOf(result)?.message).toMatch(/login may appear only once/);
    const throughFragment = `mutation ($i: LoginInput!) { a: login(input: $i) { accessToken } ...again } fragment again on Mutation { login(input: $i) { accessToken } }`;
    expect(errorOf(await gql(app, throughFragment, { i: input }))?.extensions?.limit).toBe('passwordMutations');
    const once = await gql(app, `mutation ($i: LoginInput!) { login(input: $i) { accessToken } }`, { i: input });
    expect(errorOf(once)?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});

describe('uploads', () => {
  const UPLOAD_TWICE = 'mutation ($f: File!) { a: uploadFile(file: $f) { id } b: uploadFile(file: $f) { id } }';
  const UPLOAD_EACH = 'mutation ($f: File!, $g: File!) { a: uploadFile(file: $f) { id } b: uploadFile(file: $g) { id } }';

  async function multipart(query: string, variables: Record<string, null>, map: Record<string, string[]>, files: number) {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query, variables }));
    form.set('map', JSON.stringify(map));
    for (let i = 0; i < files; i += 1) form.set(String(i), new Blob([new Uint8Array(64 * 1024).fill(i)]), `f${i}.bin`);
    const response = await fetch(`${base}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}` }, body: form });
    return (await response.json()) as { data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> };
  }
  const attachments = () => app.services.prisma.attachment.count({ where: { uploaderId: alice.id } });

  it('refuses two aliases of uploadFile on one file variable, storing nothing', async () => {
    const before = await attachments();
    const result = await multipart(UPLOAD_TWICE, { f: null }, { 0: ['variables.f'] }, 1);
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit: 'uploads' });
    expect(await attachments()).toBe(before);
  });

  it('refuses a map that points two variables at one file, storing nothing', async () => {
    const before = await attachments();
    const result = await multipart(UPLOAD_EACH, { f: null, g: null }, { 0: ['variables.f', 'variables.g'] }, 1);
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'map' });
    expect(await attachments()).toBe(before);
  });

  it('stores two files sent for two variables', async () => {
    const before = await attachments();
    const result = await multipart(UPLOAD_EACH, { f: null, g: null }, { 0: ['variables.f'], 1: ['variables.g'] }, 2);
    expect(result.errors).toBeUndefined();
    expect(result.data.a.id).not.toBe(result.data.b.id);
    expect(await attachments()).toBe(before + 2);
  });

  it('refuses more than MAX_UPLOADS_PER_REQUEST (10) files', async () => {
    const names = Array.from({ length: 11 }, (_, i) => `f${i}`);
    const query = `mutation (${names.map((name) => `$${name}: File!`).join(', ')}) { ${names.map((name) => `${name}: uploadFile(file: $${name}) { id }`).join(' ')} }`;
    const map = Object.fromEntries(names.map((name, i) => [String(i), [`variables.${name}`]]));
    const result = await multipart(query, Object.fromEntries(names.map((name) => [name, null])), map, 11);
    expect(errorOf(result)?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'map' });
    expect(errorOf(result)?.message).toMatch(/At most 10 files/);
  });
});
