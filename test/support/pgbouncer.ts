// A real PgBouncer (Debian's `pgbouncer`; .ci/run installs it) in front of the test PostgreSQL,
// in transaction mode with a small server pool, and its admin console (SHOW POOLS, SHOW STATS).
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { listening } from './ports.ts';

export interface PgBouncer {
  port: number;
  /** `databaseUrl` with its host and port replaced by PgBouncer's. */
  urlFor(databaseUrl: string): string;
  /** Rows of an admin console command, e.g. `SHOW POOLS`. */
  admin(command: string): Promise<Array<Record<string, string>>>;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  port: number;
  /** The PostgreSQL it forwards to (host, port, user and password are taken from it; clients log in with trust auth). */
  upstreamUrl: string;
  /** Server connections per database and user. */
  poolSize: number;
  poolMode?: 'transaction' | 'session';
}

export async function startPgBouncer({ port, upstreamUrl, poolSize, poolMode = 'transaction' }: PgBouncerOptions): Promise<PgBouncer> {
  const upstream = new URL(upstreamUrl);
  const user = decodeURIComponent(upstream.username) || 'postgres';
  const dir = mkdtempSync(join(tmpdir(), 'kocmoc-pgbouncer-'));
  // PgBouncer refuses to run as root; it switches to `postgres` (-u), which must read the files.
  chmodSync(dir, 0o755);
  const ini = join(dir, 'pgbouncer.ini');
  writeFileSync(join(dir, 'users.txt'), `"${user}" ""\n`, { mode: 0o644 });
  writeFileSync(
    ini,
    [
      '[databases]',
      // The upstream's password, if it has one (the embedded PostgreSQL's scram-sha-256): PgBouncer logs in to it
      // with the password of a database entry only when the entry names the user too.
      `* = host=${upstream.hostname} port=${upstream.port || 5432}${upstream.password ? ` user=${user} password=${decodeURIComponent(upstream.password)}` : ''}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      `admin_users = ${user}`,
      `pool_mode = ${poolMode}`,
      `default_pool_size = ${poolSize}`,
      'max_client_conn = 500',
      // What pg sends at startup besides user and database.
      'ignore_startup_parameters = extra_float_digits,options',
      'server_reset_query =',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const args = userInfo().uid === 0 ? ['-u', 'postgres', ini] : [ini];
  const child = spawn('pgbouncer', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await Promise.race([
      listening(port, 10_000),
      exited.then(() => {
        throw new Error(`pgbouncer exited:\n${stderr.slice(-2_000)}`);
      }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const urlFor = (databaseUrl: string) => {
    const url = new URL(databaseUrl);
    url.hostname = '127.0.0.1';
    url.port = String(port);
    return url.toString();
  };
  return {
    port,
    urlFor,
    async admin(command) {
      const client = new pg.Client({ connectionString: urlFor(new URL(`/pgbouncer`, upstreamUrl).toString()) });
      await client.connect();
      try {
        return (await client.query(command)).rows;
      } finally {
        await client.end();
      }
    },
    async stop() {
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
