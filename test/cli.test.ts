// `npm start` as a newcomer runs it: no DATABASE_URL, so an embedded PostgreSQL under DATA_DIR
// (as root, in a directory of its own under /var/lib/kocmoc), a generated JWT secret, and data that
// survives a restart.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCliServer, stopCliServer } from './support/cli-server.ts';
import { unusedPort } from './support/helpers.ts';
import { REGISTER } from './support/operations.ts';
import { rootClusterDir, runningAsRoot } from '../src/db/embedded-layout.ts';

// Private (mode 700, as mkdtemp makes it): as root, the `postgres` user cannot enter it.
const dataDir = mkdtempSync(join(tmpdir(), 'kocmoc-cli-'));
const clusterDir = runningAsRoot() ? rootClusterDir(join(dataDir, 'postgres')) : join(dataDir, 'postgres');
const embeddedPort = String(await unusedPort());
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  if (runningAsRoot()) rmSync(dirname(clusterDir), { recursive: true, force: true });
});

/** Starts the server the way `npm start` does and resolves with its GraphQL URL. */
function startServer() {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' };
  Object.assign(env, { DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1', EMBEDDED_PG_PORT: embeddedPort, WORKER_THREADS: '1' });
  return startCliServer(join(import.meta.dirname, '..'), env, children);
}

const graphql = async (url: string, query: string, variables = {}, token?: string) => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  return res.json() as Promise<any>;
};

describe('npm start without DATABASE_URL', () => {
  it('runs on an embedded PostgreSQL whose data and secrets survive a restart', async () => {
    const first = await startServer();
    expect((await fetch(first.url.replace('/graphql', '/ready'))).status).toBe(200);
    const registered = await graphql(first.url, REGISTER, {
      input: { email: 'newcomer@example.com', username: 'newcomer', password: 'first run passphrase' },
    });
    expect(registered.errors).toBeUndefined();
    expect(statSync(join(clusterDir, 'PG_VERSION')).isFile()).toBe(true);
    expect(first.logs.some((entry) => entry.clusterDir === clusterDir)).toBe(true);
    expect(statSync(join(dataDir, 'jwt-secret')).isFile()).toBe(true);
    expect(await stopCliServer(first.child)).toBe(0);

    const second = await startServer();
    // Same JWT secret and same rows: the token from the first run still works.
    const me = await graphql(second.url, '{ me { id username } }', {}, registered.data.register.accessToken);
    expect(me.data.me).toEqual({ id: registered.data.register.user.id, username: 'newcomer' });
    expect(await stopCliServer(second.child)).toBe(0);
  }, 200_000);
});
