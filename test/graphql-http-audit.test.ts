// The GraphQL over HTTP spec audit (graphql-http's), against the server with every transport
// plugin on (persisted queries, @defer/@stream, compression, caching): no warning, no error.
import { auditServer } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { startTestApp } from './support/helpers.ts';

let app: App;
let url: string;
beforeAll(async () => {
  app = await startTestApp();
  url = (await app.start()).url;
});
afterAll(() => app?.stop());

describe('graphql-http audit', () => {
  it('passes every audit without a warning or an error (notices listed)', async () => {
    // As a browser asks: compressed answers must pass too.
    const fetchFn = (input: RequestInfo | URL, init?: RequestInit) => {
      const headers = new Headers(init?.headers);
      headers.set('accept-encoding', 'gzip, br');
      return fetch(input, { ...init, headers });
    };
    const results = await auditServer({ url, fetchFn });
    expect(results.length).toBeGreaterThan(50);
    const failures = results.filter((result) => result.status === 'warn' || result.status === 'error').map((result) => `${result.name}: ${'reason' in result ? result.reason : ''}`);
    expect(failures).toEqual([]);
  });
});
