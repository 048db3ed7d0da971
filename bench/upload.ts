// Uploads: throughput of 10 concurrent 5 MiB uploads through `uploadFile` (multipart parsing,
// type sniffing, chunked AES-256-GCM, atomic write with fsync, the Attachment row), with the
// event-loop delay p99 during it, side by side with two baselines in the same process and run:
// the same multipart bodies written plainly through the same disk storage (no GraphQL, sniffing or
// encryption), and discarded (the HTTP floor). Then where file encryption should run: chunked on
// the main thread (what ships) or in the worker pool, for one 25 MiB upload. Last, what storing a
// portrait JPEG costs: turned upright and re-encoded (before) or stripped with its orientation kept.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { FILE_CHUNK_BYTES, sealFile } from '../src/files/file-cipher.ts';
import { createLocalDiskStorage } from '../src/files/local-disk-storage.ts';
import type { WorkerPool } from '../src/cpu/pool.ts';
import { describeImage } from '../workers/images.ts';
import { IMAGE_MAX_PIXELS, THUMBNAIL_MAX_PX } from '../src/files/image-limits.ts';
import { stripMetadata } from '../workers/strip-metadata.ts';
import { mainThreadCpuMs } from './host-cpu.ts';
import { countCode, latenciesOf, maxOf, measureOutcomes, type Measurement, type Outcome } from './outcomes.ts';
import { measureRun } from './readings.ts';
import { benchConfig, registerUsers, startBenchApp, type BenchContext } from './setup.ts';
import { fixed, median, percentile, rotate, sleep, table } from './stats.ts';

const UPLOADS = 10;
const UPLOAD_BYTES = 5 * 1024 * 1024;
const ROUNDS = 3;
const BIG_UPLOAD_BYTES = 25 * 1024 * 1024;
const MiB = 1024 * 1024;

const UPLOAD = 'mutation ($file: File!, $kind: MessageKind) { uploadFile(file: $file, kind: $kind) { id size } }';

interface Variant {
  label: string;
  url: string;
  token?: string;
}

export async function runUploadBench({ databaseUrl }: BenchContext): Promise<void> {
  const uploadDir = mkdtempSync(join(tmpdir(), 'kocmoc-bench-uploads-'));
  const plainDir = mkdtempSync(join(tmpdir(), 'kocmoc-bench-plain-'));
  const config = benchConfig({ DATABASE_URL: databaseUrl, UPLOAD_DIR: uploadDir });
  const { app, url } = await startBenchApp(config);
  const baseline = await startBaselineServer(plainDir);
  const client = startUploadClient();
  try {
    const token = (await registerUsers(url, 1, 'bench_up'))[0]!.accessToken;
    console.log(`${UPLOADS} concurrent uploads of ${UPLOAD_BYTES / MiB} MiB (random bytes, kind FILE), ${ROUNDS} rounds per variant, interleaved, after one warm-up round each`);
    console.log(`local-disk storage under ${tmpdir()}; pool threads ${config.workers.threads}; files sealed inline in ${FILE_CHUNK_BYTES / 1024} KiB chunks, written in 1 MiB writes, fsynced`);
    console.log('MiB/s: file bytes (10 x 5 MiB) / wall time of the round; loop: monitorEventLoopDelay, resolution 1 ms (included in the values)');
    console.log('main cpu ms: CPU of the main thread (the server\'s event loop) per round; the HTTP client runs in a worker thread of this process');
    console.log('host %: all cores\' busy share over the round, whoever used them');
    console.log('');

    const variants: Variant[] = [
      { label: 'discard body (HTTP floor)', url: `${baseline.url}/discard` },
      { label: 'plain write (same storage.put, no GraphQL/sniff/crypto)', url: `${baseline.url}/plain` },
      { label: 'uploadFile (shipped)', url, token },
    ];
    for (const variant of variants) await uploadRound(client, variant);
    const rounds = new Map<string, Measurement[]>(variants.map((variant) => [variant.label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of rotate(variants, round)) rounds.get(variant.label)!.push(await uploadRound(client, variant));
    }

    const all = variants.flatMap((variant) => rounds.get(variant.label)!);
    console.log(roundsTable(all));
    const failures = all.flatMap((m) => m.outcomes.filter((o) => o.code !== 'OK').map((o) => `${m.label}: ${o.code}`));
    if (failures.length > 0) console.log(`not ok: ${failures.join(', ')}`);
    console.log('');
    const summary = variants.map((variant) => summarize(variant.label, rounds.get(variant.label)!));
    console.log(summaryTable(summary));
    const [discard, plain, shipped] = summary as [Summary, Summary, Summary];
    console.log('');
    console.log(
      `uploadFile / plain write: throughput x${fixed(shipped.mibPerSecond / plain.mibPerSecond, 2)}, ` +
        `event-loop p99 ${fixed(shipped.loopP99Ms, 2)} vs ${fixed(plain.loopP99Ms, 2)} ms (x${fixed(shipped.loopP99Ms / plain.loopP99Ms, 2)}), ` +
        `main-thread CPU per MiB ${fixed(shipped.mainCpuMsPerMiB, 2)} vs ${fixed(plain.mainCpuMsPerMiB, 2)} ms`,
    );
    console.log(`uploadFile / discard: throughput x${fixed(shipped.mibPerSecond / discard.mibPerSecond, 2)}`);
    console.log('');
    await encryptionPlacement(app.services.pool, config.messageEncryption.keys[config.messageEncryption.currentKeyId]!, plainDir);
    console.log('');
    await portraitStore();
  } finally {
    await client.close();
    await new Promise<void>((resolve) => baseline.server.close(() => resolve()));
    await app.stop();
    rmSync(uploadDir, { recursive: true, force: true });
    rmSync(plainDir, { recursive: true, force: true });
  }
}

/** `/discard` reads and drops the body; `/plain` writes it through the same local-disk storage the app uses. */
async function startBaselineServer(dir: string): Promise<{ server: Server; url: string }> {
  const storage = createLocalDiskStorage({ root: dir });
  let next = 0;
  const server = createServer((request, response) => {
    const done = (status: number) => response.writeHead(status, { 'content-type': 'application/json' }).end('{"data":{}}');
    if (request.url === '/plain') {
      storage.put(`plain-${next++}`, request).then(
        () => done(200),
        () => done(500),
      );
    } else {
      request.resume();
      request.once('end', () => done(200));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** One round of a variant; mainCpuMs is the server's event loop alone (the client runs in a worker thread). */
function uploadRound(client: UploadClient, variant: Variant): Promise<Measurement> {
  return measureOutcomes(variant.label, () => client.upload(variant.url, variant.token, UPLOADS, UPLOAD_BYTES), { settleMs: 300 });
}

const okCount = (m: Measurement) => countCode(m.outcomes, 'OK');
const mibPerSecond = (m: Measurement) => (okCount(m) * UPLOAD_BYTES) / MiB / (m.wallMs / 1_000);

function roundsTable(measurements: Measurement[]): string {
  const headers = ['variant (each round)', 'ok', 'wall ms', 'MiB/s', 'upload p50 ms', 'upload max ms', 'loop p50 ms', 'loop p99 ms', 'loop max ms', 'main cpu ms', 'ours %', 'host %'];
  return table(
    headers,
    measurements.map((m) => [
      m.label,
      `${okCount(m)}/${m.outcomes.length}`,
      fixed(m.wallMs, 0),
      fixed(mibPerSecond(m)),
      fixed(percentile(latenciesOf(m.outcomes), 50), 0),
      fixed(maxOf(latenciesOf(m.outcomes)), 0),
      fixed(m.loopDelayMs.p50, 2),
      fixed(m.loopDelayMs.p99, 2),
      fixed(m.loopDelayMs.max, 2),
      fixed(m.mainCpuMs, 0),
      fixed((m.cpuMs / (m.wallMs * availableParallelism())) * 100, 0),
      fixed(m.hostBusy * 100, 0),
    ]),
  );
}

interface Summary {
  label: string;
  mibPerSecond: number;
  loopP99Ms: number;
  loopMaxMs: number;
  mainCpuMsPerMiB: number;
}

/** Medians over the rounds (the max is the worst round's). */
function summarize(label: string, runs: Measurement[]): Summary {
  return {
    label,
    mibPerSecond: median(runs.map(mibPerSecond)),
    loopP99Ms: median(runs.map((m) => m.loopDelayMs.p99)),
    loopMaxMs: Math.max(...runs.map((m) => m.loopDelayMs.max)),
    mainCpuMsPerMiB: median(runs.map((m) => m.mainCpuMs / ((okCount(m) * UPLOAD_BYTES) / MiB))),
  };
}

function summaryTable(summaries: Summary[]): string {
  const [, plain] = summaries;
  return table(
    ['variant (median of rounds)', 'MiB/s', 'x plain', 'loop p99 ms', 'x plain', 'loop max ms', 'main cpu ms/MiB'],
    summaries.map((s) => [
      s.label,
      fixed(s.mibPerSecond),
      fixed(s.mibPerSecond / plain!.mibPerSecond, 2),
      fixed(s.loopP99Ms, 2),
      fixed(s.loopP99Ms / plain!.loopP99Ms, 2),
      fixed(s.loopMaxMs, 2),
      fixed(s.mainCpuMsPerMiB, 2),
    ]),
  );
}

/**
 * One 25 MiB upload's encryption and write, alone: sealed on the main thread chunk by chunk while
 * it is written (what ships), against the best case for the pool (the whole buffer moved to a
 * worker and sealed there in one call, the ciphertext moved back and written).
 */
async function encryptionPlacement(pool: WorkerPool, masterKey: Uint8Array, storageDir: string): Promise<void> {
  const plaintext = randomBytes(BIG_UPLOAD_BYTES);
  const rows: Array<Array<string | number>> = [];
  // Both write the result through the same local-disk storage; the pool variant gets its input
  // ready before the clock starts, as an upload's own buffer would be.
  const storage = createLocalDiskStorage({ root: storageDir });
  let next = 0;
  const variants: Array<[string, (input: Uint8Array) => Promise<void>]> = [
    [
      'inline: sealed chunk by chunk while written (shipped)',
      async (input) => {
        await storage.put(`inline-${next++}`, sealFile(masterKey, 'bench', [input], input.byteLength));
      },
    ],
    [
      'pool: whole buffer moved there and back, then written',
      async (input) => {
        const [sealed] = await pool.run('sealBatch', { key: new Uint8Array(masterKey), items: [{ aad: 'bench', plaintext: input }] }, { transferList: [input.buffer as ArrayBuffer] });
        await storage.put(`pool-${next++}`, [sealed!]);
      },
    ],
  ];
  const results = new Map<string, Array<{ wallMs: number; mainCpuMs: number; maxDelayMs: number }>>();
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const [label, run] of rotate(variants, round)) {
      const input = new Uint8Array(plaintext);
      await sleep(200);
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      histogram.enable();
      const mainBefore = mainThreadCpuMs();
      const started = performance.now();
      await run(input);
      const result = { wallMs: performance.now() - started, mainCpuMs: mainThreadCpuMs() - mainBefore, maxDelayMs: histogram.max / 1e6 };
      histogram.disable();
      // Round 0 warms both up (the pool threads load the task module lazily).
      if (round > 0) results.set(label, [...(results.get(label) ?? []), result]);
    }
  }
  for (const [label, runs] of results) {
    rows.push([
      label,
      fixed(median(runs.map((r) => r.wallMs)), 1),
      fixed((BIG_UPLOAD_BYTES / MiB / median(runs.map((r) => r.wallMs))) * 1_000, 0),
      fixed(median(runs.map((r) => r.mainCpuMs)), 1),
      fixed(median(runs.map((r) => r.maxDelayMs)), 2),
    ]);
  }
  console.log(`encryption of one ${BIG_UPLOAD_BYTES / MiB} MiB upload alone, median of ${ROUNDS} rounds after a warm-up`);
  console.log(table(['where', 'wall ms', 'MiB/s', 'main cpu ms', 'loop max ms'], rows));
}

/**
 * One 12-megapixel portrait JPEG (EXIF orientation 6 with camera and GPS tags, as phones write
 * them) made ready to store, in this process with one libvips thread as in a pool thread: turned
 * upright and re-encoded (what shipped before), stripped with the orientation kept as a tag and
 * re-read by sharp (what ships), and the whole describeImage task around it (thumbnail included).
 */
async function portraitStore(): Promise<void> {
  const { default: sharp } = await import('sharp');
  sharp.concurrency(1);
  // Upscaled noise: detail a JPEG encoder has to work at, at a phone photo's size.
  const photo = await sharp(randomBytes(1008 * 756 * 3), { raw: { width: 1008, height: 756, channels: 3 } })
    .resize(4032, 3024)
    .jpeg({ quality: 90 })
    .withExif({ IFD0: { Make: 'Bench', Model: 'Phone' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '55/1 45/1 2136/100' } })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const variants: Array<[string, () => Promise<number>]> = [
    ['before: turned upright, re-encoded (q92)', async () => (await sharp(photo).autoOrient().keepIccProfile().jpeg({ quality: 92 }).toBuffer()).byteLength],
    [
      'shipped: stripped, orientation kept, re-read',
      async () => {
        const stripped = stripMetadata(photo, 'jpeg', 6)!;
        await sharp(stripped).metadata();
        return stripped.byteLength;
      },
    ],
    [
      'shipped describeImage (with thumbnail)',
      async () => {
        const description = await describeImage({ bytes: new Uint8Array(photo), maxThumbnailPx: THUMBNAIL_MAX_PX, maxPixels: IMAGE_MAX_PIXELS });
        return description.ok ? description.original.byteLength : Number.NaN;
      },
    ],
  ];
  const results = new Map<string, Array<{ wallMs: number; cpuMs: number; bytes: number }>>();
  for (let round = 0; round < ROUNDS + 1; round++) {
    for (const [label, run] of rotate(variants, round)) {
      const { value: bytes, wallMs, cpuMs } = await measureRun(run, { settleMs: 100 });
      // Round 0 warms up (libvips loads its codecs on first use).
      if (round > 0) results.set(label, [...(results.get(label) ?? []), { wallMs, cpuMs, bytes }]);
    }
  }
  console.log(`storing one ${fixed(photo.byteLength / MiB, 1)} MiB portrait JPEG (4032x3024, orientation 6), one libvips thread, median of ${ROUNDS} rounds after a warm-up`);
  console.log(
    table(
      ['variant', 'wall ms', 'cpu ms', 'stored KiB'],
      variants.map(([label]) => {
        const runs = results.get(label)!;
        return [label, fixed(median(runs.map((r) => r.wallMs)), 1), fixed(median(runs.map((r) => r.cpuMs)), 1), fixed(runs[0]!.bytes / 1024, 0)];
      }),
    ),
  );
}

interface UploadClient {
  upload(url: string, token: string | undefined, count: number, bytes: number): Promise<Outcome[]>;
  close(): Promise<void>;
}

/**
 * Multipart uploads from a worker thread, so building and sending 50 MiB of request bodies does
 * not count as the server's event-loop delay. Plain JS: workers do not inherit tsx.
 */
function startUploadClient(): UploadClient {
  const source = `
    const { parentPort } = require('node:worker_threads');
    const { randomBytes } = require('node:crypto');
    const payloads = new Map();
    parentPort.on('message', async ({ id, url, token, count, bytes, query }) => {
      if (!payloads.has(bytes)) payloads.set(bytes, Array.from({ length: count }, () => randomBytes(bytes)));
      const results = await Promise.all(payloads.get(bytes).slice(0, count).map(async (payload, index) => {
        const form = new FormData();
        form.set('operations', JSON.stringify({ query, variables: { file: null, kind: 'FILE' } }));
        form.set('map', JSON.stringify({ 0: ['variables.file'] }));
        form.set('0', new Blob([payload]), 'upload-' + index + '.bin');
        const started = performance.now();
        try {
          const response = await fetch(url, { method: 'POST', headers: token ? { authorization: 'Bearer ' + token } : {}, body: form });
          const text = await response.text();
          let code = response.ok ? 'OK' : 'HTTP_' + response.status;
          try { const body = JSON.parse(text); if (body.errors) code = body.errors[0]?.extensions?.code ?? 'ERROR'; } catch {}
          return { code, ms: performance.now() - started };
        } catch (error) {
          return { code: 'NETWORK', ms: performance.now() - started };
        }
      }));
      parentPort.postMessage({ id, results });
    });
  `;
  const worker = new Worker(source, { eval: true });
  const pending = new Map<number, (outcomes: Outcome[]) => void>();
  let nextId = 0;
  worker.on('message', ({ id, results }: { id: number; results: Outcome[] }) => {
    pending.get(id)?.(results);
    pending.delete(id);
  });
  return {
    upload(url, token, count, bytes) {
      const id = nextId++;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        worker.postMessage({ id, url, token, count, bytes, query: UPLOAD });
      });
    },
    close: async () => {
      await worker.terminate();
    },
  };
}

