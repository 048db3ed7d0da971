// sendMessage throughput and latency: 50 senders in a closed loop over real HTTP, first each in its
// own direct chat (no lock contention), then all in one group chat (everyone queues for the chat
// row's lock). Baselines in the same run: the same insert statement through bare `pg` (the database's
// floor for the same rows) and `{ __typename }` over the same HTTP path (the HTTP + Yoga ceiling).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import pg from 'pg';
import { buildApp } from '../src/server/app.ts';
import { databaseName } from '../src/db/pg-admin.ts';
import type { Config } from '../src/env.ts';
import { Prisma } from '../src/generated/prisma/client.ts';
import { uuidv7 } from '../src/ids.ts';
import { messageAad } from '../src/messages/content.ts';
import { sendMessage } from '../src/messages/messages.ts';
import { indexTokens } from '../src/messages/search-index.ts';
import { CREATE_CHAT, SEND_MESSAGE_RECEIPT } from '../test/support/operations.ts';
import { mapLimited, postGraphQL, SEQUENCE_PLACEHOLDER, startLoadProcess, type LoadProcess, type LoadSummary, type SenderSpec } from './graphql-load.ts';
import { hostBusyShare, othersBusyShare, sampleHostCpu } from './host-cpu.ts';
import { countOf, describeCounts, summarizeLatency, totalOf, type CodeCounts, type Latency } from './outcomes.ts';
import { BENCH_TEXT, benchConfig, benchRedisUrl, registerUsers, SEND_LOAD, type BenchContext } from './setup.ts';
import { fixed, percentile, sleep, table } from './stats.ts';

const { senders: SENDERS, warmUpMs: WARM_UP_MS, durationMs: DURATION_MS } = SEND_LOAD;
const CEILING_DURATION_MS = 5_000;
/** Rows the bare-SQL baseline writes untimed first, so its connections and plans are warm too. */
const SQL_WARM_UP_ROWS = 500;
/** The app's Prisma pool size (createPrisma's default in src/db/client.ts): the baseline gets the same connections. */
const APP_POOL_CONNECTIONS = 10;
const TARGET_SENDS_PER_SECOND = 1_500;
const TARGET_P99_MS = 50;
/** Embedded (no Redis) sendMessage/s against the same with Redis, in the same run. */
const TARGET_EMBEDDED_RATIO = 0.9;
/** Linux reports per-process CPU in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const MS_PER_TICK = 10;

/** What the bare-SQL baseline writes per row. */
interface InsertRow {
  id: string;
  chatId: string;
  senderId: string;
  content: Buffer;
  contentKeyId: string;
  clientMessageId: string;
}

/**
 * The statement sendMessage (src/messages/messages.ts) runs for a TEXT message under `config`,
 * recorded from the product function itself rather than copied: sendMessage runs once on a Prisma
 * client whose $queryRaw keeps the statement instead of sending it, with a cipher that returns a
 * marked ciphertext. Each parameter is then traced back to the row field it came from by the
 * values sendMessage was given; one the bench cannot place stops the bench before the run.
 */
async function productInsertStatement(config: Config): Promise<{ text: string; params: (row: InsertRow) => unknown[] }> {
  const given = { chatId: 'bench-chat-id', senderId: 'bench-sender-id', clientMessageId: 'bench-client-message-id', contentKeyId: 'bench-key-id' };
  const ciphertext = new Uint8Array(1);
  let aad: string | undefined;
  let statement: Prisma.Sql | undefined;
  const recorded = new Error('statement recorded, not sent');
  const services = {
    config,
    prisma: {
      $queryRaw: (strings: TemplateStringsArray, ...values: unknown[]) => {
        statement = Prisma.sql(strings, ...values);
        throw recorded;
      },
    },
    cipher: {
      seal: async (items: Array<{ aad: string }>) => {
        aad = items[0]?.aad;
        return [{ keyId: given.contentKeyId, ciphertext }];
      },
    },
  } as unknown as Parameters<typeof sendMessage>[0];
  const input = { chatId: given.chatId, kind: 'TEXT' as const, text: BENCH_TEXT, clientMessageId: given.clientMessageId };
  const error = await sendMessage(services, given.senderId, input).then(() => undefined, (reason: unknown) => reason);
  if (error !== recorded || !statement) throw new Error(`bench: sendMessage ran no $queryRaw statement to record (${String(error)})`);

  const fields = statement.values.map((value, index): ((row: InsertRow) => unknown) => {
    if (value === given.chatId) return (row) => row.chatId;
    if (value === given.senderId) return (row) => row.senderId;
    if (value === given.clientMessageId) return (row) => row.clientMessageId;
    if (value === given.contentKeyId) return (row) => row.contentKeyId;
    if (value === ciphertext) return (row) => row.content;
    // The id sendMessage made for the message: what it sealed the content for.
    if (typeof value === 'string' && aad === messageAad(value)) return (row) => row.id;
    // The message's blind-index tokens (src/messages/search-index.ts), which depend on its chat.
    if (Array.isArray(value) && value.every((item) => item instanceof Uint8Array)) {
      return (row) => indexTokens(config.messageEncryption, row.chatId, BENCH_TEXT).map((token) => new Uint8Array(token));
    }
    // The blind-index entry's key id: the current message key's (search-index.ts), the same for every row.
    if (value === config.messageEncryption.currentKeyId) return () => value;
    // What a TEXT message without reply or attachment sends as it is.
    if (value === null || value === input.kind) return () => value;
    throw new Error(`bench: sendMessage's statement has a parameter the bench cannot place: $${index + 1} = ${JSON.stringify(value)}`);
  });
  return { text: statement.text, params: (row) => fields.map((field) => field(row)) };
}

interface Sender {
  userId: string;
  token: string;
  directChatId: string;
}

/** What the parent process saw over one measured window. */
interface WindowReading {
  wallMs: number;
  /** This process: the server (or, for bare SQL, the pg driver), worker threads included. */
  appCpuMs: number;
  /** The PostgreSQL backends connected to the bench database. */
  postgresCpuMs: number;
  hostBusy: number;
  loopBusy: number;
  loopP99Ms: number;
  loopMaxMs: number;
}

interface Measurement {
  label: string;
  workers: number;
  codes: CodeCounts;
  latencyMs: Latency;
  reading: WindowReading;
  /** The load process's CPU; NaN when there is none (bare SQL). */
  clientCpuMs: number;
  /** SQL statements sent during the window, background work included. */
  statements: number;
}

export async function runSendMessage({ databaseUrl }: BenchContext): Promise<void> {
  // Embedded first (REDIS_URL unset whatever the environment says), then the same with Redis.
  const config = benchConfig({ DATABASE_URL: databaseUrl, REDIS_URL: '' });
  const redisConfig = benchConfig({ DATABASE_URL: databaseUrl, REDIS_URL: benchRedisUrl(), JOB_QUEUE_PREFIX: `bench-send-${process.pid}` });
  const database = databaseName(databaseUrl);
  console.log(`${SENDERS} senders in a closed loop (one request in flight each, own keep-alive socket), ${WARM_UP_MS / 1_000} s warm-up + ${DURATION_MS / 1_000} s measured per shape`);
  console.log(`sendMessage: TEXT of ${BENCH_TEXT.length} characters with a unique clientMessageId, selection { id seq createdAt }`);
  console.log(`bare SQL: sendMessage's insert statement (recorded from src/messages/messages.ts) through pg, ${SENDERS} workers on ${APP_POOL_CONNECTIONS} connections (the app's pool size), as many rows as sendMessage managed`);
  console.log('embedded = REDIS_URL unset: events and background jobs (e.g. push fan-out) run in the server process and count in its numbers;');
  console.log(`redis = REDIS_URL ${redisConfig.redisUrl}: events and jobs go through Redis; the fan-out jobs wait there (no worker runs) and are not measured`);
  console.log('HTTP load comes from a child process. loop: event-loop delay (resolution 1 ms, included) and utilization of the server\'s main thread;');
  console.log('stmts/ok: SQL statements sent during the window per ok answer (Prisma query log), background work such as push fan-out included;');
  console.log('CPU ms per ok: app = this process (server; the pg driver for bare SQL), client = load process, pg = backends of the bench database;');
  console.log('host %: all cores\' busy share over the window, whoever used them; others %: the part of it not used by app, client or pg (other load on the machine)');
  console.log('');

  // Read first: if the product's statement changed shape, stop before spending the run.
  const insert = { ...(await productInsertStatement(config)), contentKeyId: config.messageEncryption.currentKeyId, content: randomBytes(sealedSize(BENCH_TEXT)) };
  const embedded = await measureThroughApp(config, database, 'embedded');
  const { senders, groupChatId, direct, group, ceiling } = embedded;
  const redis = await measureThroughApp(redisConfig, database, 'redis');
  // The app is stopped by now, so none of its background work (e.g. push fan-out of the rows the
  // baseline writes) runs during the baseline.
  const sql = new pg.Pool({ connectionString: databaseUrl, max: APP_POOL_CONNECTIONS });
  let directSql: Measurement;
  let groupSql: Measurement;
  try {
    directSql = await measureBareSql(sql, database, 'bare SQL, direct chats', count(direct, 'OK'), insert,
      senders.map((sender) => ({ chatId: sender.directChatId, senderId: sender.userId })),
    );
    groupSql = await measureBareSql(sql, database, 'bare SQL, one group chat', count(group, 'OK'), insert,
      senders.map((sender) => ({ chatId: groupChatId, senderId: sender.userId })),
    );
  } finally {
    await sql.end();
  }

  const all = [direct, redis.direct, directSql, group, redis.group, groupSql, ceiling, redis.ceiling];
  console.log(resultsTable(all));
  for (const line of outcomeLines(all)) console.log(line);
  console.log('');
  console.log(ratioLine('direct chats', direct, directSql));
  console.log(ratioLine('one group chat', group, groupSql));
  console.log(
    `sendMessage / { __typename } ok/s: direct x${fixed(rate(direct) / rate(ceiling), 2)}, group x${fixed(rate(group) / rate(ceiling), 2)} ` +
      `(the HTTP + Yoga ceiling here: ${fixed(rate(ceiling), 0)}/s)`,
  );
  for (const m of [direct, redis.direct, group, redis.group]) console.log(cpuBudgetLine(m));
  console.log('');
  for (const line of coreLines(embedded.cores)) console.log(line);
  console.log('');
  for (const m of [direct, redis.direct, group, redis.group]) console.log(verdictLine(m));
  for (const [shape, embedded, withRedis] of [['direct chats', direct, redis.direct], ['one group chat', group, redis.group]] as const) {
    const ratio = rate(embedded) / rate(withRedis);
    console.log(
      `target embedded/redis ok/s >= ${TARGET_EMBEDDED_RATIO}, ${shape}: ${ratio >= TARGET_EMBEDDED_RATIO ? 'PASS' : 'MISS'} ` +
        `(${fixed(rate(embedded), 0)} vs ${fixed(rate(withRedis), 0)} = x${fixed(ratio, 2)}; server CPU per send ${fixed(perOk(embedded, embedded.reading.appCpuMs), 3)} vs ${fixed(perOk(withRedis, withRedis.reading.appCpuMs), 3)} ms)`,
    );
  }
}

/** Everything that needs the app: setup, both sendMessage shapes and the HTTP ceiling, counting the app's SQL statements. */
async function measureThroughApp(config: Config, databaseName: string, mode: string) {
  // Counting statements through Prisma's query events cost no measurable CPU (within noise of a
  // findFirst micro-run), so the measured app counts its own.
  const statements = { issued: 0 };
  const app = await buildApp({ config, onQuery: () => void statements.issued++ });
  const { url } = await app.start();
  const load = startLoadProcess();
  try {
    const { senders, groupChatId } = await createSendersAndChats(url);
    const measure = (label: string, specs: SenderSpec[], durationMs = DURATION_MS) =>
      measureHttp(load, databaseName, statements, `${label} (${mode})`, { url, senders: specs, warmUpMs: WARM_UP_MS, durationMs });
    const direct = await measure(
      'sendMessage, direct chats',
      senders.map((sender, index) => ({ token: sender.token, body: sendBody(sender.directChatId, `direct-${index}`) })),
    );
    const group = await measure(
      'sendMessage, one group chat',
      senders.map((sender, index) => ({ token: sender.token, body: sendBody(groupChatId, `group-${index}`) })),
    );
    const ceiling = await measure(
      '{ __typename }, no auth',
      senders.map(() => ({ body: JSON.stringify({ query: '{ __typename }' }) })),
      CEILING_DURATION_MS,
    );
    const cores = await measureOnCores((cpus) =>
      measure(
        `sendMessage, direct chats, API on cpu ${cpus}`,
        senders.map((sender, index) => ({ token: sender.token, body: sendBody(sender.directChatId, `cpu${cpus.replace(/\D/g, '')}-${index}`) })),
      ),
    );
    return { senders, groupChatId, direct, group, ceiling, cores };
  } finally {
    await load.close();
    await app.stop();
  }
}

/** The API process's cores for the taskset comparison: one core, then both (the machine has two). */
const CORE_SETS = ['0', '0,1'] as const;

/**
 * The direct-chat shape again with this process (the API server, every thread) pinned by `taskset`
 * to one core, then to two; the load process (forked earlier, so not pinned) and PostgreSQL run
 * wherever the kernel puts them. What one more core gives the API, measured rather than assumed.
 * Empty without taskset (not Linux) or on a one-core machine.
 */
async function measureOnCores(measure: (cpus: string) => Promise<Measurement>): Promise<Array<{ cpus: string; m: Measurement }>> {
  if (availableParallelism() < 2 || !pinTo('0-' + (availableParallelism() - 1))) return [];
  const results: Array<{ cpus: string; m: Measurement }> = [];
  try {
    for (const cpus of CORE_SETS) {
      pinTo(cpus);
      results.push({ cpus, m: await measure(cpus) });
    }
  } finally {
    pinTo('0-' + (availableParallelism() - 1));
  }
  return results;
}

/** Pins every thread of this process to `cpus` (a taskset list); false when taskset is not there. */
function pinTo(cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A hub user, 50 senders each in a direct chat with the hub, and one group of all of them; all through GraphQL. */
export async function createSendersAndChats(url: string): Promise<{ senders: Sender[]; groupChatId: string }> {
  const accounts = (await registerUsers(url, SENDERS + 1, 'send')).map(({ userId, accessToken }) => ({ userId, token: accessToken }));
  const [hub, ...others] = accounts as [Omit<Sender, 'directChatId'>, ...Omit<Sender, 'directChatId'>[]];
  const senders = await mapLimited(others, 10, async (sender) => {
    const { createChat } = await postGraphQL(url, CREATE_CHAT, { input: { kind: 'DIRECT', memberIds: [hub.userId] } }, sender.token);
    return { ...sender, directChatId: createChat.id as string };
  });
  const { createChat } = await postGraphQL(
    url,
    CREATE_CHAT,
    { input: { kind: 'GROUP', title: 'Send bench', memberIds: senders.map((sender) => sender.userId) } },
    hub.token,
  );
  return { senders, groupChatId: createChat.id };
}

/** The request body for one sender; the load process fills in the sequence, so every clientMessageId is new. */
export function sendBody(chatId: string, senderTag: string): string {
  const input = { chatId, kind: 'TEXT', text: BENCH_TEXT, clientMessageId: `${senderTag}-${SEQUENCE_PLACEHOLDER}` };
  return JSON.stringify({ query: SEND_MESSAGE_RECEIPT, variables: { input } });
}

/** Bytes the product stores for a text: `{"t":…}` sealed as iv (12) + tag (16) + ciphertext. */
function sealedSize(text: string): number {
  return 28 + Buffer.byteLength(JSON.stringify({ t: text }));
}

async function measureHttp(
  load: LoadProcess,
  databaseName: string,
  statements: { issued: number },
  label: string,
  spec: Parameters<LoadProcess['run']>[0],
): Promise<Measurement> {
  // Lets the previous shape's leftovers (queued background work, closing sockets) settle first.
  await sleep(1_000);
  let stop: (() => WindowReading) | undefined;
  let reading: WindowReading | undefined;
  let issuedAtStart = 0;
  let issued = Number.NaN;
  const summary: LoadSummary = await load.run(spec, {
    onStart: () => {
      issuedAtStart = statements.issued;
      stop = startWindow(databaseName);
    },
    onEnd: () => {
      reading = stop?.();
      issued = statements.issued - issuedAtStart;
    },
  });
  if (!reading) throw new Error(`${label}: the load process never closed its window`);
  const { codes, latencyMs, clientCpuMs } = summary;
  return { label, workers: spec.senders.length, codes, latencyMs, reading, clientCpuMs, statements: issued };
}

/**
 * `rows` inserts of sendMessage's statement by SENDERS workers sharing the pool; worker i writes as
 * targets[i]. Latency includes waiting for a connection, as a request in the app would.
 */
async function measureBareSql(
  sql: pg.Pool,
  databaseName: string,
  label: string,
  rows: number,
  insert: { text: string; params: (row: InsertRow) => unknown[]; contentKeyId: string; content: Buffer },
  targets: Array<{ chatId: string; senderId: string }>,
): Promise<Measurement> {
  const runTag = `${label.replace(/\W+/g, '-')}-${Date.now().toString(36)}`;
  const insertRows = async (total: number, phase: string) => {
    const latencies: number[] = [];
    const codes: Record<string, number> = {};
    let issued = 0;
    const worker = async (index: number) => {
      const { chatId, senderId } = targets[index % targets.length]!;
      while (issued < total) {
        const sequence = issued++;
        const started = performance.now();
        const row = { id: uuidv7(), chatId, senderId, content: insert.content, contentKeyId: insert.contentKeyId, clientMessageId: `${runTag}-${phase}-${sequence}` };
        const code = await sql.query(insert.text, insert.params(row)).then(
          (result) => (result.rowCount === 1 ? 'OK' : 'NOT_INSERTED'),
          (error: { code?: string }) => `PG_${error.code ?? 'ERROR'}`,
        );
        latencies.push(performance.now() - started);
        codes[code] = (codes[code] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: SENDERS }, (_, index) => worker(index)));
    return { latencies, codes };
  };

  await sleep(500);
  await insertRows(SQL_WARM_UP_ROWS, 'warm');
  const stop = startWindow(databaseName);
  const { latencies, codes } = await insertRows(rows, 'run');
  const reading = stop();
  return { label, workers: SENDERS, codes, latencyMs: summarizeLatency(latencies), reading, clientCpuMs: Number.NaN, statements: rows };
}

/** Starts the parent's readings for one window; the returned function ends them. */
function startWindow(databaseName: string): () => WindowReading {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const hostBefore = sampleHostCpu();
  const loopBefore = performance.eventLoopUtilization();
  const postgresBefore = backendCpuMs(databaseName);
  return () => {
    const wallMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    const postgresAfter = backendCpuMs(databaseName);
    const reading: WindowReading = {
      wallMs,
      appCpuMs: (cpu.user + cpu.system) / 1_000,
      // Backends that connected during the window count in full: all of their CPU is in it.
      postgresCpuMs:
        postgresAfter.size === 0 ? Number.NaN : [...postgresAfter].reduce((sum, [pid, ms]) => sum + ms - (postgresBefore.get(pid) ?? 0), 0),
      hostBusy: hostBusyShare(hostBefore, sampleHostCpu()),
      loopBusy: performance.eventLoopUtilization(loopBefore).utilization,
      loopP99Ms: histogram.percentile(99) / 1e6,
      loopMaxMs: histogram.max / 1e6,
    };
    histogram.disable();
    return reading;
  };
}

/**
 * CPU so far of each PostgreSQL backend connected to `databaseName`, by pid, from /proc (Linux,
 * local server only; empty otherwise). Backends title themselves "postgres: … user database host …".
 */
function backendCpuMs(databaseName: string): Map<number, number> {
  const usage = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return usage;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!title.startsWith('postgres:') || !title.includes(` ${databaseName} `)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After "pid (comm) ": state is field 3, utime and stime fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      usage.set(Number(entry), (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK);
    } catch {
      // The process ended while we looked.
    }
  }
  return usage;
}

const count = (m: Measurement, code: string) => countOf(m.codes, code);
const total = (m: Measurement) => totalOf(m.codes);
const rate = (m: Measurement) => (count(m, 'OK') * 1_000) / m.reading.wallMs;
const perOk = (m: Measurement, cpuMs: number) => cpuMs / count(m, 'OK');

function resultsTable(measurements: Measurement[]): string {
  const headers = ['variant', 'workers', 'ok', 'errors', 'ok/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'loop p99 ms', 'loop max ms', 'loop busy %', 'stmts/ok', 'app ms/ok', 'client ms/ok', 'pg ms/ok', 'host %', 'others %'];
  const rows = measurements.map((m) => [
    m.label,
    m.workers,
    count(m, 'OK'),
    total(m) - count(m, 'OK'),
    fixed(rate(m), 0),
    fixed(m.latencyMs.p50, 1),
    fixed(m.latencyMs.p95, 1),
    fixed(m.latencyMs.p99, 1),
    fixed(m.latencyMs.max, 0),
    fixed(m.reading.loopP99Ms, 1),
    fixed(m.reading.loopMaxMs, 1),
    fixed(m.reading.loopBusy * 100, 0),
    fixed(m.statements / count(m, 'OK'), 2),
    fixed(perOk(m, m.reading.appCpuMs), 3),
    fixed(perOk(m, m.clientCpuMs), 3),
    fixed(perOk(m, m.reading.postgresCpuMs), 3),
    fixed(m.reading.hostBusy * 100, 0),
    fixed(othersShare(m) * 100, 0),
  ]);
  return table(headers, rows);
}

/** Share of all cores busy with something other than this bench's processes: other load that disturbed the row. */
function othersShare(m: Measurement): number {
  return othersBusyShare(m.reading.hostBusy, m.reading.wallMs, [m.reading.appCpuMs, m.clientCpuMs, m.reading.postgresCpuMs]);
}

function outcomeLines(measurements: Measurement[]): string[] {
  return measurements.flatMap((m) => {
    const failures = describeCounts(m.codes, ['OK']);
    return failures ? [`${m.label} errors: ${failures}`] : [];
  });
}

function ratioLine(shape: string, ours: Measurement, bare: Measurement): string {
  return (
    `${shape}: sendMessage / bare SQL = ok/s x${fixed(rate(ours) / rate(bare), 2)} (${fixed(rate(ours), 0)} vs ${fixed(rate(bare), 0)}), ` +
    `p99 x${fixed(ours.latencyMs.p99 / bare.latencyMs.p99, 2)} (${fixed(ours.latencyMs.p99, 1)} vs ${fixed(bare.latencyMs.p99, 1)} ms)`
  );
}

/**
 * Two limits from what one send cost: the machine's cores over everybody's CPU per send, and the
 * server's one event loop over the app's CPU per send (the main thread does nearly all of it).
 */
function cpuBudgetLine(m: Measurement): string {
  const app = perOk(m, m.reading.appCpuMs);
  const client = perOk(m, m.clientCpuMs);
  const postgres = perOk(m, m.reading.postgresCpuMs);
  const sum = app + client + postgres;
  const cores = availableParallelism();
  return (
    `${m.label}: CPU per send app ${fixed(app, 3)} + client ${fixed(client, 3)} + pg ${fixed(postgres, 3)} = ${fixed(sum, 3)} ms ` +
    `-> ${cores} cores allow ~${fixed((cores * 1_000) / sum, 0)}/s; one server event loop allows ~${fixed(1_000 / app, 0)}/s`
  );
}

function verdictLine(m: Measurement): string {
  const pass = rate(m) >= TARGET_SENDS_PER_SECOND && m.latencyMs.p99 < TARGET_P99_MS && total(m) === count(m, 'OK');
  return (
    `target >= ${TARGET_SENDS_PER_SECOND} sends/s with p99 < ${TARGET_P99_MS} ms and no errors, ${m.label}: ${pass ? 'PASS' : 'MISS'} ` +
    `(${fixed(rate(m), 0)}/s, p99 ${fixed(m.latencyMs.p99, 1)} ms, ${total(m) - count(m, 'OK')} errors)`
  );
}

/**
 * The taskset comparison: sends/s and CPU per send with the API on one core and on two, and from
 * them what a third core could add: the machine's cores over all CPU per send, and the one event
 * loop's limit over the API's CPU per send (more cores do not raise that one; a second API process would).
 */
function coreLines(cores: Array<{ cpus: string; m: Measurement }>): string[] {
  if (cores.length === 0) return ['API on 1 vs 2 cores: not measured (no taskset, or one core)'];
  const headers = ['API cpus', 'ok/s', 'p50 ms', 'p99 ms', 'app ms/ok', 'client ms/ok', 'pg ms/ok', 'all ms/ok', 'loop busy %', 'host %', 'others %'];
  const rows = cores.map(({ cpus, m }) => {
    const all = perOk(m, m.reading.appCpuMs) + perOk(m, m.clientCpuMs) + perOk(m, m.reading.postgresCpuMs);
    return [cpus, fixed(rate(m), 0), fixed(m.latencyMs.p50, 1), fixed(m.latencyMs.p99, 1), fixed(perOk(m, m.reading.appCpuMs), 3), fixed(perOk(m, m.clientCpuMs), 3),
      fixed(perOk(m, m.reading.postgresCpuMs), 3), fixed(all, 3), fixed(m.reading.loopBusy * 100, 0), fixed(m.reading.hostBusy * 100, 0), fixed(othersShare(m) * 100, 0)];
  });
  const one = cores[0]!.m;
  const two = cores[cores.length - 1]!.m;
  const all = perOk(two, two.reading.appCpuMs) + perOk(two, two.clientCpuMs) + perOk(two, two.reading.postgresCpuMs);
  const loopLimit = 1_000 / perOk(two, two.reading.appCpuMs);
  return [
    'sendMessage into direct chats (embedded), the API process pinned with taskset (PostgreSQL and the load process unpinned):',
    table(headers, rows),
    `API on 1 -> 2 cores: ok/s x${fixed(rate(two) / rate(one), 2)} (${fixed(rate(one), 0)} -> ${fixed(rate(two), 0)}/s), app CPU per send ${fixed(perOk(one, one.reading.appCpuMs), 3)} -> ${fixed(perOk(two, two.reading.appCpuMs), 3)} ms`,
    `arithmetic at the 2-core cost (${fixed(all, 3)} ms of CPU per send, all processes): 2 cores allow ~${fixed(2_000 / all, 0)}/s, 3 cores ~${fixed(3_000 / all, 0)}/s; ` +
      `${TARGET_SENDS_PER_SECOND}/s needs ${fixed((TARGET_SENDS_PER_SECOND * all) / 1_000, 1)} cores; one API event loop allows ~${fixed(loopLimit, 0)}/s, ` +
      `so a third core gives ~${fixed(Math.min(3_000 / all, loopLimit), 0)}/s with one API process and ~${fixed(3_000 / all, 0)}/s only with two`,
  ];
}
