// A PostgreSQL primary of our own (initdb in a temp dir) and a streaming replica of it made with
// `pg_basebackup -R`, on loopback ports, for the read-replica tests. A primary of its own rather
// than the machine's: the base backup stays small and no pg_hba.conf of the machine changes. As
// root, the servers run as `postgres` (PostgreSQL refuses root).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { listening } from './ports.ts';

export interface ReplicatedPostgres {
  primaryUrl(database: string): string;
  replicaUrl(database: string): string;
  /** Stops applying WAL on the replica (it keeps answering, with what it had). */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Resolves once the replica has applied everything the primary wrote so far. */
  caughtUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export const postgresBinDir = () => {
  const found = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
};

export async function startReplicatedPostgres({ primaryPort, replicaPort }: { primaryPort: number; replicaPort: number }): Promise<ReplicatedPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('pg_config not found (apt-get install postgresql)');
  const base = mkdtempSync(join(tmpdir(), 'kocmoc-replica-'));
  const root = userInfo().uid === 0;
  const owner = root ? { uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })) } : {};
  if (root) chownSync(base, owner.uid!, owner.gid!);
  chmodSync(base, 0o700);
  const primaryDir = join(base, 'primary');
  const replicaDir = join(base, 'replica');
  const run = (tool: string, args: string[]) => {
    const result = spawnSync(join(bin, tool), args, { ...owner, encoding: 'utf8', timeout: 60_000 });
    if (result.status !== 0) throw new Error(`${tool} failed:\n${result.stdout}\n${result.stderr}`);
  };
  const children: ChildProcess[] = [];
  const serve = async (dir: string, port: number) => {
    const args = ['-D', dir, '-p', String(port), '-k', base, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'shared_buffers=32MB'];
    const child = spawn(join(bin, 'postgres'), args, { ...owner, stdio: 'ignore' });
    children.push(child);
    await listening(port, 30_000);
    // Accepting TCP is not yet accepting queries (the startup and recovery phases).
    for (let tries = 0; ; tries++) {
      try {
        await query(`postgresql://postgres@127.0.0.1:${port}/postgres`, 'SELECT 1');
        return;
      } catch (error) {
        if (tries > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = once(child, 'exit');
        child.kill('SIGINT'); // fast shutdown
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }),
    );
    rmSync(base, { recursive: true, force: true });
  };
  const primary = (database: string) => `postgresql://postgres@127.0.0.1:${primaryPort}/${database}`;
  const replica = (database: string) => `postgresql://postgres@127.0.0.1:${replicaPort}/${database}`;
  try {
    run('initdb', ['-D', primaryDir, '--auth=trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
    await serve(primaryDir, primaryPort);
    run('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primaryPort), '-U', 'postgres', '-D', replicaDir, '-R', '-X', 'stream', '--no-sync']);
    await serve(replicaDir, replicaPort);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    primaryUrl: primary,
    replicaUrl: replica,
    pauseReplay: () => query(replica('postgres'), 'SELECT pg_wal_replay_pause()').then(() => {}),
    resumeReplay: () => query(replica('postgres'), 'SELECT pg_wal_replay_resume()').then(() => {}),
    async caughtUp(timeoutMs = 10_000) {
      const { lsn } = (await query(primary('postgres'), 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!;
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { behind } = (await query(replica('postgres'), `SELECT pg_last_wal_replay_lsn() < '${lsn}'::pg_lsn AS behind`))[0]!;
        if (!behind) return;
        if (Date.now() > deadline) throw new Error('the replica did not catch up');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stop,
  };
}

async function query(url: string, sql: string): Promise<Array<Record<string, any>>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}
