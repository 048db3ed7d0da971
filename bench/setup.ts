// What every bench shares: its config and fixed settings, the scratch database, the machine
// description, accounts registered through the API, a load client.
import { availableParallelism, cpus, loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import { buildApp, type App } from '../src/server/app.ts';
import { openScratchDatabase, type Database } from '../src/db/database.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { withDatabase } from '../src/db/pg-admin.ts';
import { loadConfig, type Config } from '../src/env.ts';
import { REGISTER } from '../test/support/operations.ts';
import { mapLimited, postGraphQL } from './graphql-load.ts';
import { hostBusyShare, sampleHostCpu } from './host-cpu.ts';
import { fixed, sleep } from './stats.ts';

/** Fixed so a bench never writes a generated secret under DATA_DIR (and never needs one). */
const BENCH_JWT_SECRET = 'bench-secret-that-is-long-enough-for-hs256-0123456789';
/** MESSAGE_ENCRYPTION_KEY of the benches that set one: fixed, so they never write a generated key under DATA_DIR. */
export const BENCH_MESSAGE_KEY = Buffer.alloc(32, 7).toString('base64');
/** The password of every account a bench registers through the API. */
export const BENCH_PASSWORD = 'correct horse battery staple';
/** The text the benches send: a short paragraph of ordinary chat text. */
export const BENCH_TEXT = 'Bench message: a short paragraph of ordinary chat text, about one hundred characters long, no emoji.';
/**
 * The closed-loop sendMessage load of the send-message bench, which the push bench's enqueue-cost
 * part repeats: this many senders, each with one request in flight, warmed up, then measured.
 */
export const SEND_LOAD: Readonly<{ senders: number; warmUpMs: number; durationMs: number }> = { senders: 50, warmUpMs: 2_000, durationMs: 10_000 };
/** Registration hashes a password; a few at a time stays well inside the pool's admission bound. */
const REGISTER_CONCURRENCY = 4;

export interface BenchContext {
  /** An emptied, migrated database that the bench may fill as it likes. */
  databaseUrl: string;
}

export interface Bench {
  name: string;
  run: (context: BenchContext) => Promise<void>;
}

/**
 * The environment (so WORKER_THREADS, PASSWORD_HASH_* etc. can be tried), pinned to a quiet,
 * loopback-only server on a free port. `test` rather than `production`: same code paths, no required secrets.
 */
/** What index.ts prints before any bench runs. */
export const RATE_LIMITS_NOTICE = 'RATE_LIMITS=off: the benches run without rate limits (document limits stay on); the limits bench turns them on for its own run';

export function benchConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    ...process.env,
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    JWT_SECRET: BENCH_JWT_SECRET,
    PORT: '0',
    HOST: '127.0.0.1',
    // Benches send far more from one address than any client may: index.ts says so when it starts.
    RATE_LIMITS: 'off',
    ...overrides,
  });
}

/** The Redis of the benches that need one: REDIS_URL, else the local default. */
export function benchRedisUrl(): string {
  return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
}

/**
 * A `kocmoc_bench` database beside DATABASE_URL, or an embedded server when none is set.
 * BENCH_DATABASE_NAME picks another name, so two bench runs against one server do not empty each other's tables.
 */
export async function openBenchDatabase(): Promise<Database> {
  const name = process.env.BENCH_DATABASE_NAME || 'kocmoc_bench';
  const config = benchConfig();
  // BENCH_REUSE_DATABASE=1 keeps what an earlier run loaded (the search bench's million messages take
  // ~25 minutes to load on a busy 2-core machine), only applying newer migrations.
  if (process.env.BENCH_REUSE_DATABASE === '1' && config.database.url) {
    const url = withDatabase(config.database.url, name);
    await applyMigrations({ databaseUrl: url });
    return { url, embedded: false, stop: async () => {} };
  }
  return openScratchDatabase(config, name);
}

/** One line that says what the numbers were measured on. */
export async function describeMachine(databaseUrl: string): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let postgres: string;
  try {
    const { rows } = await client.query<{ version: string }>('SELECT version()');
    // "PostgreSQL 15.20 (Debian …) on x86_64-pc-linux-gnu, compiled by …": the part before " on " is enough.
    postgres = rows[0]!.version.split(' on ')[0]!;
  } finally {
    await client.end();
  }
  const load = loadavg().map((value) => value.toFixed(2)).join(' ');
  // Other work on the machine skews every number below; say how busy it was just before.
  const before = sampleHostCpu();
  await sleep(1_000);
  const busy = hostBusyShare(before, sampleHostCpu());
  return [
    `machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.version}, ${postgres}`,
    `date: ${new Date().toISOString()}; before start: load average ${load}, host CPU ${fixed(busy * 100, 0)}% busy over 1 s`,
  ].join('\n');
}

/** Builds and starts the real server; the caller stops it. */
export async function startBenchApp(config: Config): Promise<{ app: App; url: string }> {
  const app = await buildApp({ config });
  const { url } = await app.start();
  return { app, url };
}

export interface RegisteredUser {
  userId: string;
  username: string;
  accessToken: string;
}

/**
 * Registers `count` accounts through the API at `url`, named `<prefix>_<run>_<index>`, all with
 * BENCH_PASSWORD; setup work, not measured. Each costs a password hash, so a few run at a time.
 */
export async function registerUsers(url: string, count: number, prefix: string): Promise<RegisteredUser[]> {
  const run = Date.now().toString(36);
  return mapLimited(Array.from({ length: count }, (_, index) => index), REGISTER_CONCURRENCY, async (index) => {
    const username = `${prefix}_${run}_${index}`;
    const input = { email: `${username}@example.com`, username, password: BENCH_PASSWORD, displayName: `Bench ${username}` };
    const { register } = await postGraphQL(url, REGISTER, { input });
    return { userId: register.user.id as string, username, accessToken: register.accessToken as string };
  });
}

export interface GraphQLRequest {
  query: string;
  variables: Record<string, unknown>;
}

export interface GraphQLResult {
  /** `extensions.code` of the first error; `OK` without errors; `HTTP_<status>`, `TIMEOUT` or `NETWORK` without a GraphQL answer. */
  code: string;
  /** From send to parsed body. */
  ms: number;
  data: Record<string, any> | null;
}

export interface LoadClient {
  /** Sends every request at once over real sockets; resolves when all have answered, in order. */
  send(url: string, requests: GraphQLRequest[], timeoutMs?: number): Promise<{ results: GraphQLResult[]; wallMs: number }>;
  /** The client thread's OS thread id (Linux), to tell its CPU from the server's. */
  tid: Promise<number | undefined>;
  close(): Promise<void>;
}

/** HTTP client in a worker thread (bench/load-client.mjs), so it does not load the server's event loop. */
export function startLoadClient(): LoadClient {
  const worker = new Worker(new URL('./load-client.mjs', import.meta.url));
  const pending = new Map<number, { resolve: (value: { results: GraphQLResult[]; wallMs: number }) => void; reject: (error: unknown) => void }>();
  let nextId = 0;
  let resolveTid!: (tid: number | undefined) => void;
  const tid = new Promise<number | undefined>((resolve) => (resolveTid = resolve));
  worker.on('message', (message: { id: number; results: GraphQLResult[]; wallMs: number } | { tid: number | undefined }) => {
    if ('tid' in message) return resolveTid(message.tid);
    pending.get(message.id)?.resolve({ results: message.results, wallMs: message.wallMs });
    pending.delete(message.id);
  });
  worker.on('error', (error) => {
    for (const { reject } of pending.values()) reject(error);
    pending.clear();
  });
  return {
    tid,
    send(url, requests, timeoutMs = 60_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, requests: requests.map((request) => ({ url, timeoutMs, ...request })) });
      });
    },
    close: async () => {
      await worker.terminate();
    },
  };
}
