// Login storm: many concurrent logins with argon2 in the worker pool, then with argon2 on the main
// thread, then a flood far beyond the pool's admission bound. Measures what the pool buys (event-loop
// responsiveness, throughput against the cores' hashing ceiling) and whether overload is refused.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { App } from '../src/server/app.ts';
import type { PasswordHasher } from '../src/auth/passwords.ts';
import type { Config } from '../src/env.ts';
import { hashPassword, verifyPassword } from '../workers/passwords.ts';
import { createFreeHasher, createMainThreadHasher } from './baseline-hashers.ts';
import { countCode, describeCounts, latenciesOf, maxOf, measureOutcomes, tallyCodes, type Measurement, type Outcome } from './outcomes.ts';
import { BENCH_PASSWORD, benchConfig, registerUsers, startBenchApp, startLoadClient, type BenchContext, type GraphQLRequest, type LoadClient } from './setup.ts';
import { fixed, idleLoopDelayP99, median, percentile, table } from './stats.ts';

const STORM_LOGINS = 200;
const FLOOD_LOGINS = 1_000;
/** A few accounts, so the storm is not one user's rows only. */
const USERS = 4;
const WARM_UP_LOGINS = 5;
const SINGLE_HASH_RUNS = 20;
const EVENT_LOOP_P99_TARGET_MS = 20;
const THROUGHPUT_TARGET = 0.8;

const LOGIN = 'mutation ($input: LoginInput!) { login(input: $input) { accessToken } }';

interface Run {
  client: LoadClient;
  /** The load client's OS thread, so its CPU is not counted as the server's. */
  clientTid: number | undefined;
  url: string;
  logins: GraphQLRequest[];
}

export async function runLoginStorm({ databaseUrl }: BenchContext): Promise<void> {
  const config = benchConfig({ DATABASE_URL: databaseUrl });
  const cores = availableParallelism();
  const single = measureSingleVerify(config.auth.passwordHash);
  const singleHashMs = single.medianMs;
  const ceiling = (cores * 1_000) / singleHashMs;
  const { memoryKib, passes } = config.auth.passwordHash;

  console.log(`argon2id m=${memoryKib} KiB t=${passes} p=1; pool threads ${config.workers.threads}; queue bound ${config.workers.queueMaxMs} ms`);
  console.log(`single verify on the main thread: median ${fixed(singleHashMs, 2)} ms of ${SINGLE_HASH_RUNS} runs (min ${fixed(single.minMs, 2)}, max ${fixed(single.maxMs, 2)})`);
  console.log(`expected ceiling: ${cores} cores x 1000 / ${fixed(singleHashMs, 2)} ms = ${fixed(ceiling)} logins/s`);
  console.log(`event-loop delay: monitorEventLoopDelay, resolution 1 ms, which the values include (idle p99 here: ${fixed(await idleLoopDelayP99(), 2)} ms)`);
  console.log('HTTP load comes from a worker thread of this process. loop busy %: event-loop utilization of the main thread;');
  console.log('cpu/ok ms: this process\'s CPU (server + pool + client) per ok answer; ours %: that CPU as a share of all cores;');
  console.log('host %: all cores\' busy share over the run (us + PostgreSQL + anything else on the machine)');
  console.log('');

  const { app, url } = await startBenchApp(config);
  const client = startLoadClient();
  try {
    const users = await registerUsers(url, USERS, 'bench');
    const logins = users.map(({ username }) => ({ query: LOGIN, variables: { input: { login: username, password: BENCH_PASSWORD } } }));
    const run: Run = { client, clientTid: await client.tid, url, logins };

    const pool = await loginStorm(run, 'pool', STORM_LOGINS);
    // What one hash cost inside the workers while the storm ran (the pool's moving average).
    const poolVerifyMs = app.services.pool.costOf('verifyPassword');
    const mainThread = await withHasher(app, createMainThreadHasher(config.auth.passwordHash), () =>
      loginStorm(run, 'main thread', STORM_LOGINS),
    );
    const flood = await loginStorm(run, 'flood (pool)', FLOOD_LOGINS);

    console.log(resultsTable([pool, mainThread, flood]));
    console.log('');
    printVerdict({ pool, mainThread, flood, ceiling, poolVerifyMs });

    // Where a login's time goes when the targets are judged: hashing alone, and everything but hashing.
    const hashingOnly = await poolOnlyStorm(app, run.clientTid, config.auth.passwordHash, STORM_LOGINS);
    const noHashing = await withHasher(app, createFreeHasher(), () => loginStorm(run, 'no hashing (HTTP+GraphQL+SQL)', STORM_LOGINS));
    console.log('');
    console.log('diagnostics: the two halves of a login, each alone');
    console.log(resultsTable([hashingOnly, noHashing], 'ok/s'));
    console.log(`hashing only = ${fixed((rate(hashingOnly) / ceiling) * 100)}% of the expected ceiling`);
    printCpuSplit([pool, hashingOnly, noHashing], cores, ceiling);
    printBestCase(hashingOnly, noHashing, cores, ceiling);
  } finally {
    await client.close();
    await app.stop();
  }
}

/** Sequential inline verifications with the configured parameters, after one untimed run; the median is the reference. */
function measureSingleVerify(params: Config['auth']['passwordHash']): { medianMs: number; minMs: number; maxMs: number } {
  const hash = hashPassword({ password: BENCH_PASSWORD, memoryKib: params.memoryKib, passes: params.passes });
  verifyPassword({ hash, password: BENCH_PASSWORD });
  const times: number[] = [];
  for (let run = 0; run < SINGLE_HASH_RUNS; run++) {
    const started = performance.now();
    verifyPassword({ hash, password: BENCH_PASSWORD });
    times.push(performance.now() - started);
  }
  return { medianMs: median(times), minMs: Math.min(...times), maxMs: Math.max(...times) };
}

/** Swaps the app's hasher for one run; createContext spreads `services` per request, so new logins see it. */
async function withHasher<T>(app: App, hasher: PasswordHasher, body: () => Promise<T>): Promise<T> {
  const original = app.services.passwords;
  app.services.passwords = hasher;
  try {
    return await body();
  } finally {
    app.services.passwords = original;
  }
}

/** A few sequential logins, then `count` at once. */
async function loginStorm({ client, clientTid, url, logins }: Run, label: string, count: number): Promise<Measurement> {
  for (let index = 0; index < WARM_UP_LOGINS; index++) {
    const [warm] = (await client.send(url, [logins[index % logins.length]!])).results;
    if (warm?.code !== 'OK') throw new Error(`${label}: warm-up login failed: ${warm?.code}`);
  }
  const requests = Array.from({ length: count }, (_, index) => logins[index % logins.length]!);
  return measure(label, clientTid, async () => (await client.send(url, requests)).results);
}

/** `count` verifications straight into the pool: the hashing throughput with no request around it. */
async function poolOnlyStorm(app: App, clientTid: number | undefined, params: Config['auth']['passwordHash'], count: number): Promise<Measurement> {
  const hash = hashPassword({ password: BENCH_PASSWORD, memoryKib: params.memoryKib, passes: params.passes });
  const verifyOnce = async (): Promise<Outcome> => {
    const started = performance.now();
    const valid = await app.services.pool.run('verifyPassword', { hash, password: BENCH_PASSWORD });
    return { code: valid ? 'OK' : 'WRONG', ms: performance.now() - started };
  };
  return measure('hashing only (pool, no HTTP)', clientTid, () => Promise.all(Array.from({ length: count }, verifyOnce)));
}

/** Runs `fire` with the event-loop monitor and CPU readings around it, after letting things settle. */
function measure(label: string, clientTid: number | undefined, fire: () => Promise<Outcome[]>): Promise<Measurement> {
  return measureOutcomes(label, fire, { settleMs: 500, cpuSplit: { loadClientTid: clientTid } });
}

const count = (m: Measurement, code: string) => countCode(m.outcomes, code);
const rate = (m: Measurement) => (count(m, 'OK') * 1_000) / m.wallMs;
const latencies = (m: Measurement, code?: string) => latenciesOf(m.outcomes, code);
const cpuPerOk = (m: Measurement) => (count(m, 'OK') > 0 ? m.cpuMs / count(m, 'OK') : Number.NaN);

function resultsTable(measurements: Measurement[], rateHeader = 'logins/s'): string {
  const headers = ['variant', 'n', 'ok', 'rate-limited', 'other', 'wall ms', rateHeader, 'lat p50 ms', 'lat p99 ms', 'lat max ms', 'loop p50 ms', 'loop p99 ms', 'loop max ms', 'loop busy %', 'cpu/ok ms', 'ours %', 'host %'];
  const rows = measurements.map((m) => [
    m.label,
    m.outcomes.length,
    count(m, 'OK'),
    count(m, 'RATE_LIMITED'),
    m.outcomes.length - count(m, 'OK') - count(m, 'RATE_LIMITED'),
    fixed(m.wallMs, 0),
    fixed(rate(m)),
    fixed(percentile(latencies(m), 50), 0),
    fixed(percentile(latencies(m), 99), 0),
    fixed(maxOf(latencies(m)), 0),
    fixed(m.loopDelayMs.p50, 2),
    fixed(m.loopDelayMs.p99, 2),
    fixed(m.loopDelayMs.max, 2),
    fixed(m.loopBusy * 100, 0),
    fixed(cpuPerOk(m)),
    fixed((m.cpuMs / (m.wallMs * availableParallelism())) * 100, 0),
    fixed(m.hostBusy * 100, 0),
  ]);
  const otherLines = measurements.flatMap((m) => {
    const others = describeCounts(tallyCodes(m.outcomes.map((o) => o.code)), ['OK', 'RATE_LIMITED']);
    return others ? [`${m.label} other outcomes: ${others}`] : [];
  });
  return [table(headers, rows), ...otherLines].join('\n');
}

function printVerdict(input: { pool: Measurement; mainThread: Measurement; flood: Measurement; ceiling: number; poolVerifyMs: number }) {
  const { pool, mainThread, flood, ceiling, poolVerifyMs } = input;
  const share = rate(pool) / ceiling;
  const verdict = (pass: boolean) => (pass ? 'PASS' : 'MISS');

  console.log(`pool / main thread: logins/s x${fixed(rate(pool) / rate(mainThread), 2)}, event-loop p99 x${fixed(pool.loopDelayMs.p99 / mainThread.loopDelayMs.p99, 3)}`);
  console.log(`pool logins/s = ${fixed(share * 100)}% of the expected ceiling (${fixed(ceiling)}/s); one verify inside the pool averaged ${fixed(poolVerifyMs, 2)} ms of CPU during the storm`);
  console.log(`target event-loop p99 < ${EVENT_LOOP_P99_TARGET_MS} ms with the pool: ${verdict(pool.loopDelayMs.p99 < EVENT_LOOP_P99_TARGET_MS)} (${fixed(pool.loopDelayMs.p99, 2)} ms)`);
  console.log(`target throughput >= ${THROUGHPUT_TARGET * 100}% of ceiling with the pool: ${verdict(share >= THROUGHPUT_TARGET)} (${fixed(share * 100)}%)`);
  const limited = count(pool, 'RATE_LIMITED');
  if (limited > 0) console.log(`note: ${limited} of ${pool.outcomes.length} storm logins were RATE_LIMITED; logins/s counts ok logins only`);
  const unanswered = flood.outcomes.filter((o) => o.code === 'TIMEOUT' || o.code === 'NETWORK').length;
  console.log(
    `flood: ${flood.outcomes.length} logins at once -> ${count(flood, 'OK')} ok, ${count(flood, 'RATE_LIMITED')} RATE_LIMITED, ${unanswered} unanswered; ` +
      `slowest ok ${fixed(maxOf(latencies(flood, 'OK')), 0)} ms, slowest RATE_LIMITED ${fixed(maxOf(latencies(flood, 'RATE_LIMITED')), 0)} ms`,
  );
}

/**
 * Where each ok login's CPU went, PostgreSQL included, and the ceiling share that total allows:
 * on a machine where everything shares the cores, this is the most the storm can reach.
 */
function printCpuSplit(measurements: Measurement[], cores: number, ceiling: number) {
  const measured = measurements.filter((m) => m.cpuSplit && count(m, 'OK') > 0);
  if (measured.length === 0) return;
  const users = [...measured[0]!.cpuSplit!.keys()];
  const rows = measured.map((m) => {
    const perLogin = users.map((who) => m.cpuSplit!.get(who)! / count(m, 'OK'));
    const total = perLogin.reduce((sum, ms) => sum + ms, 0);
    return [m.label, ...perLogin.map((ms) => fixed(ms, 2)), fixed(total, 2), fixed(((cores * 1_000) / total / ceiling) * 100)];
  });
  console.log('');
  console.log('CPU per ok login by who used it (ms, scheduler run time from /proc; PostgreSQL = every local postgres process)');
  console.log(table(['variant', ...users, 'total', 'cores allow % of ceiling'], rows));
}

/** All CPU an ok login cost, PostgreSQL and the load client included (scheduler run times). */
const cpuSplitPerOk = (m: Measurement) =>
  m.cpuSplit ? [...m.cpuSplit.values()].reduce((sum, ms) => sum + ms, 0) / count(m, 'OK') : Number.NaN;

/**
 * The most the storm could reach if the two halves of a login cost together what each costs alone
 * (in the storm they get dearer, sharing the cores), and the budget the target leaves for the
 * non-hashing half: the ceiling counts every core as hashing capacity, so that half must fit in
 * what the target leaves over.
 */
function printBestCase(hashingOnly: Measurement, noHashing: Measurement, cores: number, ceiling: number) {
  const hashingMs = cpuSplitPerOk(hashingOnly);
  const restMs = cpuSplitPerOk(noHashing);
  if (!Number.isFinite(hashingMs) || !Number.isFinite(restMs)) return;
  const bestShare = (cores * 1_000) / (hashingMs + restMs) / ceiling;
  const budgetMs = (cores * 1_000) / (THROUGHPUT_TARGET * ceiling) - hashingMs;
  const postgresMs = (noHashing.cpuSplit?.get('PostgreSQL') ?? Number.NaN) / count(noHashing, 'OK');
  console.log(
    `best case, halves added: ${fixed(hashingMs, 2)} + ${fixed(restMs, 2)} = ${fixed(hashingMs + restMs, 2)} ms CPU per login -> ` +
      `${cores} cores allow at most ${fixed(bestShare * 100)}% of the ceiling`,
  );
  console.log(
    `for ${THROUGHPUT_TARGET * 100}%: a login may cost ${fixed((cores * 1_000) / (THROUGHPUT_TARGET * ceiling), 2)} ms of CPU in all; ` +
      `hashing alone takes ${fixed(hashingMs, 2)}, leaving ${fixed(budgetMs, 2)} ms for HTTP, GraphQL, SQL and the client ` +
      `(measured ${fixed(restMs, 2)} ms, PostgreSQL alone ${fixed(postgresMs, 2)} ms)`,
  );
}
