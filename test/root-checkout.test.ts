// The README's two commands as a newcomer runs them in a container: as root, in a checkout that
// other users cannot enter (mode 700, like /root or `mktemp -d`). The embedded PostgreSQL runs as
// the `postgres` user, which must never need to enter the checkout (src/db/embedded-layout.ts).
// The checkout is a clone of this repository's HEAD sharing its node_modules (no second install).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rootClusterDir, runningAsRoot } from '../src/db/embedded-layout.ts';
import { startCliServer, stopCliServer } from './support/cli-server.ts';
import { unusedPort } from './support/helpers.ts';

const repository = join(import.meta.dirname, '..');
const home = mkdtempSync(join(tmpdir(), 'kocmoc-root-home-'));
const checkout = join(home, 'kocmoc');
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(home, { recursive: true, force: true });
  if (!runningAsRoot()) return;
  for (const cluster of ['postgres', 'postgres-kocmoc_test']) rmSync(dirname(rootClusterDir(join(checkout, '.data', cluster))), { recursive: true, force: true });
});

/** A clean environment: nothing of this test run's own database or Redis settings. */
const newcomerEnv = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? '', HOME: home, WORKER_THREADS: '1', ...extra });

describe.skipIf(!runningAsRoot())('as root, in a checkout other users cannot enter', () => {
  it('npm start serves /, /graphql and /ready, and npm test passes there', async () => {
    expect(statSync(home).mode & 0o777).toBe(0o700);
    execFileSync('git', ['clone', '--quiet', repository, checkout]);
    symlinkSync(join(repository, 'node_modules'), join(checkout, 'node_modules'));
    // What `npm install` runs after installing: the Prisma client and the web client's build.
    execFileSync('npm', ['run', 'postinstall'], { cwd: checkout, env: newcomerEnv({}), stdio: 'pipe' });

    const env = newcomerEnv({ PORT: '0', HOST: '127.0.0.1', EMBEDDED_PG_PORT: String(await unusedPort()) });
    const server = await startCliServer(checkout, env, children);
    const origin = new URL(server.url).origin;
    const page = await fetch(`${origin}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<script type="module" src="/app.js">');
    const graphiql = await fetch(`${origin}/graphql`, { headers: { accept: 'text/html' } });
    expect(graphiql.status).toBe(200);
    expect(await graphiql.text()).toContain('/graphiql/graphiql.js');
    expect((await fetch(`${origin}/ready`)).status).toBe(200);
    // It said where the data lives: outside the checkout, which `postgres` cannot enter.
    const cluster = rootClusterDir(join(checkout, '.data', 'postgres'));
    expect(server.logs.some((entry) => entry.clusterDir === cluster)).toBe(true);
    expect(statSync(join(cluster, 'PG_VERSION')).isFile()).toBe(true);
    expect(await stopCliServer(server.child)).toBe(0);

    // `npm test` there, on its own embedded PostgreSQL (a DATABASE_URL-less newcomer's): a file
    // that needs the database through the global setup and a file that does not.
    const vitest = spawn('npm', ['test', '--', 'test/env.test.ts', 'test/contacts.test.ts'], {
      cwd: checkout,
      env: newcomerEnv({ EMBEDDED_PG_PORT: String(await unusedPort()), REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }),
    });
    children.push(vitest);
    const output: string[] = [];
    vitest.stdout!.on('data', (chunk) => output.push(String(chunk)));
    vitest.stderr!.on('data', (chunk) => output.push(String(chunk)));
    const code = await new Promise((resolve) => vitest.once('exit', resolve));
    expect(code, output.join('')).toBe(0);
    expect(output.join('')).toMatch(/Test Files\s.*2 passed/);
  }, 240_000);
});
