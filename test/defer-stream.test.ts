// @defer and @stream: answers in parts over HTTP (multipart/mixed) and over graphql-ws, within the
// document limits.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { readFileSync } from 'node:fs';
import { buildSchema } from 'graphql';
import { SCHEMA_FILE } from '../src/schema/print.ts';
import { codeOf, createChat, gql, registerUser, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const DEFERRED_ME = '{ me { id ... @defer(label: "profile") { username } } }';

let app: App;
let url: string;
let alice: TestUser;
beforeAll(async () => {
  ({ app, url } = await startSocketTestApp());
  alice = await registerUser(app);
});
afterAll(async () => {
  await app?.stop();
});

/** The JSON parts of a multipart/mixed answer, in order. */
async function multipartParts(query: string, token: string) {
  const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'multipart/mixed', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  expect(response.headers.get('content-type')).toMatch(/^multipart\/mixed/);
  const text = await response.text();
  return text
    .split(/\r?\n/)
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, any>);
}

/** Every `next` payload of one operation over graphql-ws, until it completes. */
async function socketResults(query: string, token: string) {
  const connection = connect(url, token);
  try {
    return await new Promise<Array<Record<string, any>>>((resolve, reject) => {
      const results: Array<Record<string, any>> = [];
      connection.client.subscribe({ query }, { next: (value) => results.push(value), error: reject, complete: () => resolve(results) });
    });
  } finally {
    await connection.dispose();
  }
}

describe('the directives', () => {
  it('are served (introspection) as schema.graphql declares them, for codegen and gql.tada', async () => {
    const introspected = await gql(app, '{ __schema { directives { name locations args { name type { kind } } } } }');
    const served = introspected.data.__schema.directives.filter((directive: { name: string }) => ['defer', 'stream'].includes(directive.name));
    const declared = buildSchema(readFileSync(SCHEMA_FILE, 'utf8'));
    expect(served.map((directive: { name: string }) => directive.name).sort()).toEqual(['defer', 'stream']);
    for (const directive of served) {
      const inFile = declared.getDirective(directive.name)!;
      expect([...inFile.locations].sort()).toEqual([...directive.locations].sort());
      expect(inFile.args.map((arg) => arg.name).sort()).toEqual(directive.args.map((arg: { name: string }) => arg.name).sort());
    }
  });
});

describe('@defer', () => {
  it('answers in parts over HTTP multipart/mixed: the initial result, then the deferred fragment', async () => {
    const parts = await multipartParts(DEFERRED_ME, alice.accessToken);
    expect(parts[0]).toEqual({ data: { me: { id: alice.id } }, hasNext: true });
    const deferred = parts.slice(1).flatMap((part) => part.incremental ?? []);
    expect(deferred).toEqual([{ data: { username: alice.username }, path: ['me'], label: 'profile' }]);
    expect(parts.at(-1)!.hasNext).toBe(false);
  });

  it('answers in several next messages over graphql-ws', async () => {
    const results = await socketResults(DEFERRED_ME, alice.accessToken);
    expect(results.length).toBeGreaterThanOrEqual(2);
    expect(results[0]).toEqual({ data: { me: { id: alice.id } }, hasNext: true });
    expect(results.slice(1).flatMap((result) => result.incremental ?? [])).toEqual([
      { data: { username: alice.username }, path: ['me'], label: 'profile' },
    ]);
  });

  it('answers a client that accepts only JSON in one piece', async () => {
    const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${alice.accessToken}` },
      body: JSON.stringify({ query: DEFERRED_ME }),
    });
    // Yoga refuses to merge increments into one JSON answer: the client must accept multipart.
    expect(response.status).toBe(406);
  });

  it('still meets the document limits', async () => {
    const deep = `{ me { ... @defer { ${'contacts(first: 1) { edges { node { '.repeat(6)}id${' } } }'.repeat(6)} } } }`;
    const parts = await multipartParts(deep, alice.accessToken);
    expect(codeOf(parts[0] as never)).toBe('QUERY_TOO_COMPLEX');
  });
});

describe('@stream', () => {
  it('streams the items of a list after the initial ones', async () => {
    const bob = await registerUser(app);
    const carol = await registerUser(app);
    await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    await createChat(app, alice, { kind: 'DIRECT', memberIds: [carol.id] });
    const parts = await multipartParts('{ chats(first: 10) { edges @stream(initialCount: 1) { node { id } } } }', alice.accessToken);
    expect(parts[0]!.data.chats.edges).toHaveLength(1);
    const streamed = parts.slice(1).flatMap((part) => part.incremental ?? []);
    expect(streamed.flatMap((increment) => increment.items)).toHaveLength(1);
    expect(streamed[0].path).toEqual(['chats', 'edges', 1]);
  });
});

describe('in a subscription', () => {
  it('delivers each event in one piece, deferred fragments included', async () => {
    const bob = await registerUser(app);
    const connection = connect(url, bob.accessToken);
    try {
      const events = subscribe(connection, 'subscription { chatEvents { type chatId ... @defer { chat { id } } } }');
      await settle();
      const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
      const event = await events.next();
      expect(event.data).toEqual({ chatEvents: { type: expect.any(String), chatId, chat: { id: chatId } } });
      expect(await events.nothingWithin(300)).toBe(true);
    } finally {
      await connection.dispose();
    }
  });
});
