// Message encryption: where should AES-256-GCM run? For 100 B, 4 KiB and 1 MiB payloads, seals and
// opens a stream of batched requests inline on the main thread, as one pool task per item, as one
// pool task per batch, and through createContentCipher (the policy the code ships), and shows
// throughput next to what each costs the main thread (event-loop delay, main-thread CPU). Then the
// case the issue names: opening one page of 50 small messages, latency per page.
import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { createContentCipher, INLINE_MAX_BATCH_BYTES, ITEM_COST_BYTES, POOL_TASK_MAX_BYTES, type ContentCipher } from '../src/crypto/content-cipher.ts';
import { keyIdOf } from '../src/env.ts';
import { createWorkerPool, type WorkerPool } from '../src/cpu/pool.ts';
import { openBatch, sealBatch, type OpenItem, type SealItem } from '../workers/crypto.ts';
import { hostBusyShare, mainThreadCpuMs, sampleHostCpu } from './host-cpu.ts';
import { measureRun } from './readings.ts';
import type { BenchContext } from './setup.ts';
import { fixed, idleLoopDelayP99, percentile, rotate, sleep, table } from './stats.ts';

interface PayloadCase {
  label: string;
  bytes: number;
  /** Items per request: one inline call, one batched pool task. */
  batch: number;
}

const CASES: PayloadCase[] = [
  { label: '100 B', bytes: 100, batch: 50 },
  { label: '4 KiB', bytes: 4 * 1024, batch: 50 },
  // 50 MiB per task would be one long message each way; a few MiB per task keeps every thread fed.
  { label: '1 MiB', bytes: 1024 * 1024, batch: 4 },
];
/** Distinct payloads per case, cycled, so 1 MiB runs do not need hundreds of MiB up front. */
const DISTINCT_PAYLOADS = 16;
/** Each run keeps sending requests for this long, so fast and slow variants get equally long windows. */
const WINDOW_MS = 400;
/** Every variant runs this many times, interleaved; the run with the median throughput is shown. */
const ROUNDS = 3;
const PAGE_MESSAGES = 50;
const PAGE_MESSAGE_BYTES = 200;
const PAGES = 500;
/** Fewer for the slow variant, and while the pool is busy hashing, to stay inside the time budget. */
const PAGES_PER_ITEM_POOL = 100;
const PAGES_BUSY_POOL = 40;

type Op = 'seal' | 'open';
const OPS: Op[] = ['seal', 'open'];

interface Variant {
  label: string;
  seal: (items: SealItem[]) => Promise<Uint8Array[]>;
  open: (items: OpenItem[]) => Promise<Uint8Array[]>;
}

interface Measurement {
  variant: string;
  op: Op;
  items: number;
  payloadBytes: number;
  wallMs: number;
  loopP99Ms: number;
  loopMaxMs: number;
  /** CPU time of the main thread alone (Linux /proc), NaN elsewhere. */
  mainCpuMs: number;
  /** This process's CPU (main thread and pool threads) as a share of all cores. */
  ours: number;
  /** All cores' busy share, whoever used them: other processes skew every number. */
  hostBusy: number;
  /** (best - worst) / median items/s over the rounds. */
  spread: number;
}

export async function runEncryption(_context: BenchContext): Promise<void> {
  const threads = availableParallelism();
  const pool = createWorkerPool({ threads });
  try {
    const key = new Uint8Array(randomBytes(32));
    const keyId = keyIdOf(key);
    const keys = { [keyId]: key };
    const cipher = createContentCipher({ keyring: { currentKeyId: keyId, keys: { [keyId]: Buffer.from(key) } }, pool });
    const variants = buildVariants(pool, key, keys, cipher);
    const concurrency = threads * 2;

    await warmUp(pool, key, keyId);
    console.log(`AES-256-GCM via node:crypto; pool threads ${threads}; ${concurrency} requests in flight, each one batch; ${WINDOW_MS} ms per run`);
    console.log(
      `content cipher (shipped): inline while payload + ${ITEM_COST_BYTES / 1024} KiB/item <= ${INLINE_MAX_BATCH_BYTES / 1024} KiB, ` +
        `else pool tasks of <= ${POOL_TASK_MAX_BYTES / 1024 / 1024} MiB`,
    );
    console.log(`event-loop delay: monitorEventLoopDelay, resolution 1 ms, which the values include (idle p99 here: ${fixed(await idleLoopDelayP99(), 2)} ms)`);
    console.log(`each variant ran ${ROUNDS} times, interleaved; shown: the run with the median items/s; spread: (best - worst) / median`);
    console.log('MB/s: plaintext bytes (1 MB = 10^6 B); main cpu us/item: CPU time of the main thread alone, per item');
    console.log("ours %: this process's CPU (main + pool) as a share of all cores; host %: all cores' busy share, whoever used them");

    const all: Measurement[] = [];
    for (const payload of CASES) {
      const rows = await measureCase(payload, variants, key, keyId, concurrency);
      console.log(`\n${payload.label} payloads, ${payload.batch} per request`);
      console.log(resultsTable(rows));
      all.push(...rows);
    }

    const page = samplePage(key, keyId);
    console.log(`\npage of ${PAGE_MESSAGES} x ${PAGE_MESSAGE_BYTES} B opened, one page at a time (latency per page), idle pool`);
    console.log(pageTable(await pageLatencies(variants, page, (variant) => (variant.label === 'pool, task per item' ? PAGES_PER_ITEM_POOL : PAGES))));
    // The pool is shared with argon2: a page that waits for it waits behind whatever is queued.
    const withoutPerItem = variants.filter((variant) => variant.label !== 'pool, task per item');
    console.log(`\nthe same, while ${threads * 2} argon2id hashes (19 MiB, 2 passes) keep the pool busy`);
    console.log(pageTable(await withHashingPool(pool, () => pageLatencies(withoutPerItem, page, () => PAGES_BUSY_POOL))));

    printSummary(all);
  } finally {
    await pool.close();
  }
}

function buildVariants(pool: WorkerPool, key: Uint8Array, keys: Record<string, Uint8Array>, cipher: ContentCipher): Variant[] {
  return [
    {
      label: 'inline',
      seal: async (items) => sealBatch({ key, items }),
      open: async (items) => openBatch({ keys, items }),
    },
    {
      label: 'pool, task per item',
      seal: async (items) => (await Promise.all(items.map((item) => pool.run('sealBatch', { key, items: [item] })))).flat(),
      open: async (items) => (await Promise.all(items.map((item) => pool.run('openBatch', { keys, items: [item] })))).flat(),
    },
    {
      label: 'pool, task per batch',
      seal: (items) => pool.run('sealBatch', { key, items }),
      open: (items) => pool.run('openBatch', { keys, items }),
    },
    {
      label: 'content cipher (shipped)',
      seal: async (items) => (await cipher.seal(items)).map((sealed) => sealed.ciphertext),
      open: (items) => cipher.open(items),
    },
  ];
}

/** Every op x variant, ROUNDS times in rotated order; the median run of each. */
async function measureCase(payload: PayloadCase, variants: Variant[], key: Uint8Array, keyId: string, concurrency: number): Promise<Measurement[]> {
  const plaintexts = Array.from({ length: DISTINCT_PAYLOADS }, () => new Uint8Array(randomBytes(payload.bytes)));
  const aad = (index: number) => `msg-${index}`;
  const ciphertexts = sealBatch({ key, items: plaintexts.map((plaintext, index) => ({ aad: aad(index), plaintext })) });
  // Requests of `batch` items, cycling through the distinct payloads.
  const sealRequests = batches(payload.batch, (index) => ({ aad: aad(index), plaintext: plaintexts[index]! }));
  const openRequests = batches(payload.batch, (index) => ({ keyId, aad: aad(index), ciphertext: ciphertexts[index]! }));

  const runs = new Map<string, Measurement[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const op of OPS) {
      // Rotated, so no variant always runs right after the same neighbour.
      for (const variant of rotate(variants, round)) {
        const measured = await measure(() =>
          op === 'seal' ? drive(sealRequests, concurrency, variant.seal) : drive(openRequests, concurrency, variant.open),
        );
        const row = { ...measured, variant: variant.label, op, payloadBytes: measured.items * payload.bytes, spread: 0 };
        runs.set(`${op} ${variant.label}`, [...(runs.get(`${op} ${variant.label}`) ?? []), row]);
      }
    }
  }
  return OPS.flatMap((op) => variants.map((variant) => medianRun(runs.get(`${op} ${variant.label}`)!)));
}

/** Enough requests of `size` items that every distinct payload appears; item(index) for index < DISTINCT_PAYLOADS. */
function batches<T>(size: number, item: (index: number) => T): T[][] {
  const count = Math.max(1, Math.ceil(DISTINCT_PAYLOADS / size));
  return Array.from({ length: count }, (_, request) => Array.from({ length: size }, (_, offset) => item((request * size + offset) % DISTINCT_PAYLOADS)));
}

/**
 * Keeps `concurrency` requests in flight for WINDOW_MS, like a server with that many requests
 * waiting on crypto, and returns the items handled. Yields a turn after each request, so inline
 * work interleaves with the loop's timers as it would with other requests.
 */
async function drive<T>(requests: T[][], concurrency: number, handle: (items: T[]) => Promise<Uint8Array[]>): Promise<number> {
  const deadline = performance.now() + WINDOW_MS;
  let next = 0;
  let items = 0;
  const lane = async () => {
    while (performance.now() < deadline) {
      const request = requests[next++ % requests.length]!;
      const results = await handle(request);
      if (results.length !== request.length) throw new Error(`expected ${request.length} results, got ${results.length}`);
      items += request.length;
      await nextTurn();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return items;
}

type Reading = Omit<Measurement, 'variant' | 'op' | 'payloadBytes' | 'spread'>;

/** One run with the event-loop monitor and CPU readings around it, after a pause. */
async function measure(run: () => Promise<number>): Promise<Reading> {
  const { value: items, wallMs, loopDelayMs, mainCpuMs, cpuMs, hostBusy } = await measureRun(run, { settleMs: 100 });
  return {
    items,
    wallMs,
    loopP99Ms: loopDelayMs.p99,
    loopMaxMs: loopDelayMs.max,
    mainCpuMs,
    ours: cpuMs / (wallMs * availableParallelism()),
    hostBusy,
  };
}

/** The run with the median throughput, carrying how far the rounds spread. */
function medianRun(runs: Measurement[]): Measurement {
  const sorted = [...runs].sort((a, b) => itemsPerSecond(a) - itemsPerSecond(b));
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  return { ...median, spread: (itemsPerSecond(sorted.at(-1)!) - itemsPerSecond(sorted[0]!)) / itemsPerSecond(median) };
}

/** Threads load the tasks through tsx on their first run; keep that out of the numbers. */
async function warmUp(pool: WorkerPool, key: Uint8Array, keyId: string): Promise<void> {
  const items = [{ aad: 'warm-up', plaintext: new Uint8Array(1024) }];
  const [ciphertext] = sealBatch({ key, items });
  const opening = { keys: { [keyId]: key }, items: [{ keyId, aad: 'warm-up', ciphertext: ciphertext! }] };
  for (let round = 0; round < 50; round++) {
    await Promise.all(Array.from({ length: pool.threads * 2 }, () => Promise.all([pool.run('sealBatch', { key, items }), pool.run('openBatch', opening)])));
  }
}

const itemsPerSecond = (m: Measurement) => (m.items * 1_000) / m.wallMs;
const megabytesPerSecond = (m: Measurement) => m.payloadBytes / 1e6 / (m.wallMs / 1_000);
const mainCpuMicrosPerItem = (m: Measurement) => (m.mainCpuMs * 1_000) / m.items;

function resultsTable(rows: Measurement[]): string {
  const inline = (op: Op) => rows.find((row) => row.op === op && row.variant === 'inline')!;
  const headers = ['variant', 'op', 'items', 'spread %', 'items/s', 'MB/s', 'x inline', 'loop p99 ms', 'x inline', 'loop max ms', 'main cpu us/item', 'x inline', 'ours %', 'host %'];
  return table(
    headers,
    rows.map((row) => [
      row.variant,
      row.op,
      row.items,
      fixed(row.spread * 100, 0),
      fixed(itemsPerSecond(row), 0),
      fixed(megabytesPerSecond(row), 1),
      fixed(itemsPerSecond(row) / itemsPerSecond(inline(row.op)), 2),
      fixed(row.loopP99Ms, 2),
      fixed(row.loopP99Ms / inline(row.op).loopP99Ms, 2),
      fixed(row.loopMaxMs, 2),
      fixed(mainCpuMicrosPerItem(row), 1),
      fixed(mainCpuMicrosPerItem(row) / mainCpuMicrosPerItem(inline(row.op)), 2),
      fixed(row.ours * 100, 0),
      fixed(row.hostBusy * 100, 0),
    ]),
  );
}

interface PageRow {
  label: string;
  latencies: number[];
  mainCpuMs: number;
}

/** A page of small sealed messages and its plaintexts, for the latency runs. */
function samplePage(key: Uint8Array, keyId: string) {
  const plaintexts = Array.from({ length: PAGE_MESSAGES }, () => new Uint8Array(randomBytes(PAGE_MESSAGE_BYTES)));
  const ciphertexts = sealBatch({ key, items: plaintexts.map((plaintext, index) => ({ aad: `msg-${index}`, plaintext })) });
  return { plaintexts, items: ciphertexts.map((ciphertext, index) => ({ keyId, aad: `msg-${index}`, ciphertext })) };
}

/** Sequential pages: each page's open latency from call to plaintexts, and the main thread's CPU per page. */
async function pageLatencies(variants: Variant[], page: ReturnType<typeof samplePage>, pagesOf: (variant: Variant) => number): Promise<PageRow[]> {
  const rows: PageRow[] = [];
  for (const variant of variants) {
    const pages = pagesOf(variant);
    for (let warm = 0; warm < 5; warm++) await variant.open(page.items);
    await sleep(100);
    const latencies: number[] = [];
    const mainBefore = mainThreadCpuMs();
    for (let run = 0; run < pages; run++) {
      const started = performance.now();
      const opened = await variant.open(page.items);
      latencies.push(performance.now() - started);
      if (opened.length !== PAGE_MESSAGES || !Buffer.from(opened[7]!).equals(page.plaintexts[7]!)) throw new Error(`${variant.label}: page opened wrong`);
      await nextTurn();
    }
    rows.push({ label: variant.label, latencies, mainCpuMs: (mainThreadCpuMs() - mainBefore) / pages });
  }
  return rows;
}

/**
 * Runs `body` while the shared pool is kept saturated with password hashes (as in a login storm),
 * to show what queueing behind other pool work does to crypto that waits for the pool.
 */
async function withHashingPool<T>(pool: WorkerPool, body: () => Promise<T>): Promise<T> {
  let hashing = true;
  const lanes = Array.from({ length: pool.threads * 2 }, async () => {
    while (hashing) await pool.run('hashPassword', { password: 'correct horse battery staple', memoryKib: 19_456, passes: 2 });
  });
  try {
    await sleep(200);
    return await body();
  } finally {
    hashing = false;
    await Promise.all(lanes);
  }
}

function pageTable(rows: PageRow[]): string {
  const inlineP50 = percentile(rows[0]!.latencies, 50);
  return table(
    ['variant', 'pages', 'p50 ms', 'p99 ms', 'max ms', 'p50 x inline', 'main cpu ms/page'],
    rows.map(({ label, latencies, mainCpuMs }) => [
      label,
      latencies.length,
      fixed(percentile(latencies, 50), 3),
      fixed(percentile(latencies, 99), 3),
      fixed(Math.max(...latencies), 3),
      fixed(percentile(latencies, 50) / inlineP50, 2),
      fixed(mainCpuMs, 3),
    ]),
  );
}

/** The two inline costs the content cipher's threshold is built from, read off the runs above. */
function printSummary(all: Measurement[]): void {
  const inlineRow = (bytes: number, op: Op) => all.find((row) => row.variant === 'inline' && row.op === op && row.payloadBytes === row.items * bytes)!;
  console.log('');
  for (const op of OPS) {
    const small = inlineRow(100, op);
    const large = inlineRow(1024 * 1024, op);
    console.log(
      `inline ${op}: ~${fixed(1e6 / itemsPerSecond(small), 1)} us per 100 B item (mostly fixed per-item cost), ` +
        `~${fixed(1e3 / itemsPerSecond(large), 2)} ms per 1 MiB item (${fixed(megabytesPerSecond(large), 0)} MB/s)`,
    );
  }
}

// `node --import tsx bench/encryption.ts` runs this bench alone (it needs no database).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(`machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.version}`);
  const before = sampleHostCpu();
  await sleep(1_000);
  const busy = hostBusyShare(before, sampleHostCpu());
  console.log(`date: ${new Date().toISOString()}; before start: load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}, host CPU ${fixed(busy * 100, 0)}% busy over 1 s`);
  await runEncryption({ databaseUrl: '' });
}
