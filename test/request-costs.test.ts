// The per-request work a send no longer repeats (bench/RESULTS.md "sendMessage: where a send's CPU
// goes"): an access token's signature is checked once per token, not per request, and an
// operation's cost is computed once per document and page-size variables, not per set of all
// variables. Each must still refuse what it refused before.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'graphql';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTokenService } from '../src/auth/tokens.ts';
import { loadConfig } from '../src/env.ts';
import { schema } from '../src/schema/index.ts';
import { operationCost } from '../src/server/plugins/operation-cost.ts';

const authConfig = (secret: string) =>
  loadConfig({ DATA_DIR: mkdtempSync(join(tmpdir(), 'kocmoc-request-costs-')), NODE_ENV: 'test', JWT_SECRET: secret }).auth;
const SECRET = 'request-costs-secret-that-is-long-enough-for-hs256-0123';
const claims = { userId: '0190c0de-aaaa-7bbb-8ccc-123456789abc', sessionId: '0190c0de-aaaa-7bbb-8ccc-123456789abd' };

describe('verifyAccessToken remembers tokens that verified', () => {
  afterEach(() => vi.useRealTimers());

  it('answers a known token again until it expires, then says expired', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const tokens = createTokenService(authConfig(SECRET));
    const { token, expiresAt } = await tokens.issueAccessToken(claims);
    const first = await tokens.verifyAccessToken(token);
    expect(first).toMatchObject(claims);
    expect(await tokens.verifyAccessToken(token)).toEqual(first);
    vi.setSystemTime(expiresAt.getTime() + 1_000);
    expect(await tokens.verifyAccessToken(token)).toBe('expired');
    // And stays expired (not forgotten into a fresh check that could differ).
    expect(await tokens.verifyAccessToken(token)).toBe('expired');
  });

  it('still refuses a tampered copy of a known token, and a token of another secret', async () => {
    const tokens = createTokenService(authConfig(SECRET));
    const { token } = await tokens.issueAccessToken(claims);
    expect(await tokens.verifyAccessToken(token)).toMatchObject(claims);
    const signature = token.slice(token.lastIndexOf('.') + 1);
    const flipped = `${token.slice(0, token.lastIndexOf('.') + 1)}${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
    expect(await tokens.verifyAccessToken(flipped)).toBeNull();
    const [header, , sig] = token.split('.');
    const otherPayload = Buffer.from(JSON.stringify({ sub: 'someone-else', sid: claims.sessionId })).toString('base64url');
    expect(await tokens.verifyAccessToken(`${header}.${otherPayload}.${sig}`)).toBeNull();
    const other = createTokenService(authConfig('another-secret-that-is-long-enough-for-hs256-01234567'));
    expect(await other.verifyAccessToken(token)).toBeNull();
  });
});

describe('operationCost per document and page-size variables', () => {
  const costOf = (query: ReturnType<typeof parse>, variableValues: Record<string, unknown>) => operationCost({ schema, document: query, variableValues });

  it('gives every send the same cost whatever its text and clientMessageId', () => {
    const send = parse('mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq createdAt } }');
    const costs = new Set(
      Array.from({ length: 200 }, (_, i) => costOf(send, { input: { chatId: '1', kind: 'TEXT', text: `text ${i}`, clientMessageId: `id-${i}` } })),
    );
    expect([...costs]).toHaveLength(1);
    expect(typeof [...costs][0]).toBe('number');
  });

  it('still follows first/last and @include/@skip variables', () => {
    const page = parse(`query ($c: ID!, $n: Int, $more: Boolean!) { chat(id: $c) { messages(first: $n) { edges { node {
      id chat @include(if: $more) { messages(first: $n) { edges { node { id } } } } } } } } }`);
    const small = costOf(page, { c: '1', n: 10, more: true });
    const large = costOf(page, { c: '2', n: 100, more: true });
    const without = costOf(page, { c: '3', n: 100, more: false });
    expect(small).toBeLessThan(large!);
    expect(without).toBeLessThan(large!);
    // An absent page size takes the default page, not the cost of an explicit null.
    expect(costOf(page, { c: '1', more: true })).toBe(costOf(page, { c: '1', n: 20, more: true }));
  });

  it('never lets a refused variable set stand for a valid one with the same page sizes', () => {
    const page = parse('query ($c: ID!, $n: Int) { chat(id: $c) { messages(first: $n) { edges { node { id } } } } }');
    expect(costOf(page, { c: { not: 'an id' }, n: 1_000 })).toBeUndefined();
    expect(costOf(page, { c: '1', n: 1_000 })).toBeGreaterThan(1_000);
  });
});
