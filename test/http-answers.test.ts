// What HTTP adds to GraphQL answers: compression over 1 KiB, Cache-Control on authenticated answers,
// ETag and 304 on cacheable GETs, and subscriptions as server-sent events left streaming.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { acceptedEncoding } from '../src/server/plugins/http-answers.ts';
import { createChat, registerUser, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { TYPING } from './support/operations.ts';

let app: App;
let url: string;
let alice: TestUser;
beforeAll(async () => {
  const started = await startSocketTestApp();
  [app, url] = [started.app, started.url];
  alice = await registerUser(app);
});
afterAll(() => app?.stop());

const post = (query: string, headers: Record<string, string> = {}) =>
  app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify({ query }),
  });

const get = (query: string, headers: Record<string, string> = {}) =>
  app.yoga.fetch(`http://kocmoc.test/graphql?query=${encodeURIComponent(query)}`, { headers: { accept: 'application/json', ...headers } });

const bytesOf = async (response: Response) => Buffer.from(await response.arrayBuffer());

describe('compression', () => {
  it.each([
    ['br', brotliDecompressSync],
    ['gzip', gunzipSync],
  ] as const)('compresses an introspection with %s', async (encoding, decompress) => {
    const plain = await bytesOf(await post(getIntrospectionQuery()));
    const response = await post(getIntrospectionQuery(), { 'accept-encoding': encoding === 'br' ? 'gzip, deflate, br' : 'gzip;q=1, br;q=0' });
    expect(response.headers.get('content-encoding')).toBe(encoding);
    expect(response.headers.get('vary')).toMatch(/accept-encoding/);
    const compressed = await bytesOf(response);
    expect(Number(response.headers.get('content-length'))).toBe(compressed.length);
    expect(compressed.length).toBeLessThan(plain.length / 5);
    expect(JSON.parse(decompress(compressed).toString('utf8'))).toEqual(JSON.parse(plain.toString('utf8')));
  });

  it('leaves answers of 1 KiB or less, and clients that accept no encoding of ours, uncompressed', async () => {
    const small = await post('{ __typename }', { 'accept-encoding': 'gzip, br' });
    expect(small.headers.get('content-encoding')).toBeNull();
    expect(await small.json()).toEqual({ data: { __typename: 'Query' } });
    const identity = await post(getIntrospectionQuery(), { 'accept-encoding': 'deflate, identity' });
    expect(identity.headers.get('content-encoding')).toBeNull();
  });

  it('reads Accept-Encoding weights', () => {
    expect(acceptedEncoding('gzip, br')).toBe('br');
    expect(acceptedEncoding('br;q=0.5, gzip')).toBe('gzip');
    expect(acceptedEncoding('*')).toBe('br');
    expect(acceptedEncoding('*, br;q=0')).toBe('gzip');
    expect(acceptedEncoding('identity')).toBeUndefined();
    expect(acceptedEncoding(null)).toBeUndefined();
  });
});

describe('caching', () => {
  it('marks authenticated answers private, no-store and gives them no ETag', async () => {
    const response = await post('{ me { id } }', { authorization: `Bearer ${alice.accessToken}` });
    expect(response.headers.get('cache-control')).toBe('private, no-store');
    expect(response.headers.get('etag')).toBeNull();
    const viaGet = await get('{ me { id } }', { authorization: `Bearer ${alice.accessToken}` });
    expect([viaGet.status, viaGet.headers.get('cache-control'), viaGet.headers.get('etag')]).toEqual([200, 'private, no-store', null]);
  });

  it('gives an unauthenticated GET an ETag and answers 304 when it still matches', async () => {
    const first = await get('{ vapidPublicKey }');
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^W\/"[\w-]{27}"$/);
    expect(first.headers.get('cache-control')).toBe('public, no-cache');
    expect(first.headers.get('vary')).toMatch(/authorization/);
    const revalidated = await get('{ vapidPublicKey }', { 'if-none-match': etag! });
    expect(revalidated.status).toBe(304);
    expect(await revalidated.text()).toBe('');
    const other = await get('{ __typename }', { 'if-none-match': etag! });
    expect(other.status).toBe(200);
    expect(other.headers.get('etag')).not.toBe(etag);
  });

  it('gives no ETag to a POST or to an answer with errors', async () => {
    expect((await post('{ vapidPublicKey }')).headers.get('etag')).toBeNull();
    const failed = await get('{ me { id } }');
    expect((await failed.json()).errors).toBeDefined();
    expect(failed.headers.get('etag')).toBeNull();
  });
});

describe('subscriptions over server-sent events (graphql-sse distinct connections)', () => {
  it('streams events uncompressed and uncached, even to a client that accepts gzip', async () => {
    const bob = await registerUser(app);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const controller = new AbortController();
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        'accept-encoding': 'gzip, br',
        authorization: `Bearer ${bob.accessToken}`,
      },
      body: JSON.stringify({ query: TYPING, variables: { chatId } }),
      signal: controller.signal,
    });
    try {
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      // Yoga marks event streams `none`, which keeps proxies from buffering them to compress.
      expect(response.headers.get('content-encoding') ?? 'none').toBe('none');
      expect(response.headers.get('cache-control')).toMatch(/no-store/);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let received = '';
      const typing = setInterval(() => void post(`mutation { setTyping(chatId: ${JSON.stringify(chatId)}, isTyping: true) }`, { authorization: `Bearer ${alice.accessToken}` }), 200);
      try {
        while (!received.includes('"isTyping":true')) received += (await reader.read()).value ?? '';
      } finally {
        clearInterval(typing);
      }
      expect(received).toMatch(/event: next\ndata: \{"data":\{"typing":\{"chatId":"[^"]+","isTyping":true,"user":\{"id":"[^"]+"\}\}\}\}/);
    } finally {
      controller.abort();
    }
  });
});
