// Real faults for the delivery tests and the soak bench: a database that refuses connections and
// ends those it has, a Redis of our own to kill and restart, an API instance in a child process to
// kill with SIGKILL. Never the machine's shared PostgreSQL server or Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { databaseName, openClient, quoteIdent, withDatabase } from '../../src/db/pg-admin.ts';
import { listening, unusedPort } from './ports.ts';

export interface DatabaseOutage {
  /** From now on the database refuses new connections, and the ones it has are ended. */
  begin(): Promise<void>;
  /** Lets connections in again. */
  end(): Promise<void>;
  /** Ends the outage if one is on, and the admin connection. */
  close(): Promise<void>;
}

/**
 * Outages of `databaseUrl`'s database, run from its server's `postgres` database: `ALLOW_CONNECTIONS
 * false` (which binds superusers too, unlike CONNECTION LIMIT) and `pg_terminate_backend`, as a
 * restart looks to its clients.
 */
export async function databaseOutages(databaseUrl: string): Promise<DatabaseOutage> {
  const name = databaseName(databaseUrl);
  const admin = await openClient(withDatabase(databaseUrl, 'postgres'));
  let down = false;
  const allow = (allowed: boolean) => admin.query(`ALTER DATABASE ${quoteIdent(name)} ALLOW_CONNECTIONS ${allowed}`);
  const outage: DatabaseOutage = {
    async begin() {
      down = true;
      await allow(false);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    },
    async end() {
      down = false;
      await allow(true);
    },
    async close() {
      if (down) await outage.end();
      await admin.end();
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
    async kill() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
    async start() {
      child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...args], { stdio: 'ignore' });
      await listening(port);
    },
  };
  await server.start();
  return server;
}
