// How the web client and GraphiQL's files are served, without a browser: the client's page and
// its CSP, revalidation, what is left to the API, a clear answer when the client is not built,
// and the typed client in step with schema.graphql.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRAPHIQL_CSP } from '../../src/server/graphiql.ts';
import { useWebClient, WEB_CLIENT_CSP } from '../../src/server/plugins/web-client.ts';
import type { App } from '../../src/server/app.ts';
import { startTestApp } from '../support/helpers.ts';

let app: App;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app?.stop());

const get = (path: string, headers: Record<string, string> = {}) => app.yoga.fetch(`http://kocmoc.test${path}`, { headers });

describe('the web client', () => {
  it('serves its page at / under a strict CSP, and its script, stylesheet and service worker', async () => {
    const page = await get('/', { accept: 'text/html' });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(WEB_CLIENT_CSP);
    expect(WEB_CLIENT_CSP).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'/);
    expect(await page.text()).toContain('src="/app.js"');
    const files: Array<[string, string]> = [
      ['/app.js', 'text/javascript'],
      ['/app.css', 'text/css'],
      ['/sw.js', 'text/javascript'],
      ['/icon.svg', 'image/svg+xml'],
    ];
    for (const [path, type] of files) {
      const response = await get(path);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type')).toContain(type);
    }
  });

  it('answers 304 to a matching ETag, and gzips for clients that accept it', async () => {
    const first = await get('/app.js', { 'accept-encoding': 'gzip' });
    expect(first.headers.get('content-encoding')).toBe('gzip');
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^".+"$/);
    const again = await get('/app.js', { 'if-none-match': etag });
    expect(again.status).toBe(304);
  });

  it('leaves every other path to the API', async () => {
    expect((await get('/health')).status).toBe(200);
    expect((await get('/nothing-here.js')).status).toBe(404);
    const graphiql = await get('/graphql', { accept: 'text/html' });
    expect(graphiql.headers.get('content-security-policy')).toBe(GRAPHIQL_CSP);
    expect((await get('/graphiql/start.js')).status).toBe(200);
    expect((await get('/graphiql/nope.js')).status).toBe(404);
  });

  it('says how to build it when it is not built', async () => {
    const yoga = createYoga({ schema: createSchema({ typeDefs: 'type Query { ok: Boolean }' }), plugins: [useWebClient({ dir: mkdtempSync(join(tmpdir(), 'kocmoc-web-')) })] });
    const response = await yoga.fetch('http://kocmoc.test/');
    expect(response.status).toBe(503);
    expect(await response.text()).toMatch(/npm run build/);
  });

  it("is typed against the current schema.graphql (@kocmoc/client's src/graphql-env.d.ts is up to date)", () => {
    // Throws (exit 1, with the reason on stderr) when the file is stale.
    execFileSync(process.execPath, [join(import.meta.dirname, '..', '..', 'packages', 'client', 'build.mjs'), '--check'], { stdio: 'pipe' });
  });
});
