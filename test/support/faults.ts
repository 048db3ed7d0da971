// Real faults for the delivery tests and the soak bench: a database that refuses connections and
// ends those it has, a Redis of our own to kill and restart, an API instance in a child process to
// kill with SIGKILL. Never the machine's shared PostgreSQL server or Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { databaseName, quoteIdent, withClient, withDatabase } from '../../src/db/pg-admin.ts';
import { sendMessage } from '../../src/messages/messages.ts';
import type { App } from '../../src/server/app.ts';
import { listening, unusedPort } from './ports.ts';

export interface DatabaseOutage {
  /** From now on the database refuses new connections, and the ones it has are ended. */
  begin(): Promise<void>;
  /** Lets connections in again. */
  end(): Promise<void>;
  /** Ends the outage if one is on. */
  close(): Promise<void>;
}

/**
 * Outages of `databaseUrl`'s database, run from its server's `postgres` database: `ALLOW_CONNECTIONS
 * false` (which binds superusers too, unlike CONNECTION LIMIT) and `pg_terminate_backend`, as a
 * restart looks to its clients. Each step on a connection of its own, so a server restarted in
 * between (the soak bench's) is no trouble.
 */
export async function databaseOutages(databaseUrl: string): Promise<DatabaseOutage> {
  const name = databaseName(databaseUrl);
  const adminUrl = withDatabase(databaseUrl, 'postgres');
  const allow = (client: pg.Client, allowed: boolean) => client.query(`ALTER DATABASE ${quoteIdent(name)} ALLOW_CONNECTIONS ${allowed}`);
  let down = false;
  const outage: DatabaseOutage = {
    async begin() {
      down = true;
      await withClient(adminUrl, async (client) => {
        await allow(client, false);
        await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
      });
    },
    async end() {
      down = false;
      await withClient(adminUrl, (client) => allow(client, true));
    },
    async close() {
      if (down) await outage.end();
    },
  };
  return outage;
}

export interface RedisServer {
  url: string;
  /** Kills it with SIGKILL; resolves once it exited. */
  kill(): Promise<void>;
  /** Starts it (again) on the same port; resolves once it accepts connections. */
  start(): Promise<void>;
}

/** A redis-server of our own on a free port, started; `args` are added to its command line. */
export async function startRedisServer(args: string[] = []): Promise<RedisServer> {
  const port = await unusedPort();
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    kill: () => killed(child),
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...args], { stdio: 'ignore' });
      await listening(port);
    },
  };
  await server.start();
  return server;
}

/** Kills `child` with SIGKILL unless it already exited; resolves once it has. */
async function killed(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

export interface ApiInstance {
  /** Its GraphQL endpoint (the same across restarts: the port is fixed). */
  url: string;
  /** Starts it (again); resolves once it accepts connections. */
  start(): Promise<void>;
  /** Kills it with SIGKILL (no shutdown at all); resolves once it exited. */
  kill(): Promise<void>;
  /** Kills it if it runs, and removes its data directory. */
  close(): Promise<void>;
  /** Its process id while it runs (the benches read its CPU time). */
  pid(): number | undefined;
}

/**
 * `npm start` in a child process on a fixed free port, with `env` (the database, Redis, the
 * secrets it must share with the other instances) over quiet defaults: push off, one worker
 * thread, a data directory of its own.
 */
export async function apiInstance(env: Record<string, string>): Promise<ApiInstance> {
  const port = await unusedPort();
  const dataDir = mkdtempSync(join(tmpdir(), 'kocmoc-instance-'));
  const root = join(import.meta.dirname, '..', '..');
  let child: ChildProcess | undefined;
  const instance: ApiInstance = {
    url: `http://127.0.0.1:${port}/graphql`,
    async start() {
      const output: string[] = [];
      const started = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          NODE_ENV: 'test',
          HOST: '127.0.0.1',
          PORT: String(port),
          DATA_DIR: dataDir,
          PUSH_ENABLED: 'false',
          WORKER_THREADS: '1',
          LOG_LEVEL: 'warn',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = started;
      // Drained, or a chatty child would block on a full pipe; the last lines say why a start failed.
      for (const stream of [started.stdout!, started.stderr!]) {
        stream.on('data', (chunk) => {
          output.push(String(chunk));
          if (output.length > 40) output.shift();
        });
      }
      const exited = once(started, 'exit').then(() => {
        throw new Error(`the instance exited while starting:\n${output.join('')}`);
      });
      await Promise.race([listening(port, 60_000), exited]);
      exited.catch(() => {});
    },
    kill: () => killed(child),
    async close() {
      await killed(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
    pid: () => child?.pid,
  };
  await instance.start();
  return instance;
}

/**
 * Sends a message the way an instance that died between its commit and its publish did: stored,
 * with its position, but no live event. Subscribers learn of it from a later event or a check.
 */
export async function sendWithoutEvent(app: App, senderId: string, chatId: string, text: string, extra: { clientMessageId?: string } = {}) {
  const silent = { ...app.services, events: { ...app.services.events, message: async () => {} } };
  return sendMessage(silent, senderId, { chatId, kind: 'TEXT', text, ...extra });
}
