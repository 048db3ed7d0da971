// The process-wide upload memory budget (UPLOAD_MEMORY_BYTES) over a real port, set to the least
// it may be for 1 MiB uploads: what fits is served, what does not waits briefly and then gets
// RATE_LIMITED, other requests go on, and every way an upload ends gives its bytes back.
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createUploadMemory, UPLOAD_MEMORY_WAIT_MS } from '../src/files/upload-memory.ts';
import { uploadPeakBytes } from '../src/files/upload-sizes.ts';
import { codeOf, gql, registerUser, startUploadTestApp, type TestUser } from './support/helpers.ts';

const KiB = 1024;
const MAX_UPLOAD_BYTES = 1024 * KiB;
/** The least UPLOAD_MEMORY_BYTES allowed with 1 MiB uploads: 3 MiB + 64 KiB. */
const BUDGET = uploadPeakBytes(MAX_UPLOAD_BYTES);
/** Three of these bodies fit the budget, leaving ~70 KiB. */
const HOLDER_FILE_BYTES = MAX_UPLOAD_BYTES - 4 * KiB;
const UPLOAD = 'mutation ($file: File!, $kind: MessageKind) { uploadFile(file: $file, kind: $kind) { id size width } }';

let app: App;
let base: string;
let stopApp: (() => Promise<void>) | undefined;
let alice: TestUser;

beforeAll(async () => {
  ({ app, base, stop: stopApp } = await startUploadTestApp({ MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES), UPLOAD_MEMORY_BYTES: String(BUDGET) }));
  alice = await registerUser(app);
});
afterAll(() => stopApp?.());

const memory = () => app.services.uploadMemory;

async function until(condition: () => boolean, what: string, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what} (held ${memory().heldBytes}, waiting ${memory().waiting})`);
    await sleep(5);
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line[1]);
}

interface UploadResult {
  status: number;
  data?: { uploadFile: { id: string; size: number; width: number | null } } | null;
  errors?: Array<{ message: string; extensions?: Record<string, any> }>;
  retryAfter: string | null;
  connection: string | null;
}

/** A GraphQL multipart body for one file, in the three parts a test may send at different times. */
function multipartBody(file: Uint8Array, kind: string | null = null) {
  const boundary = `kocmoc-${randomBytes(6).toString('hex')}`;
  const operations = JSON.stringify({ query: UPLOAD, variables: { file: null, kind } });
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="upload.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { contentType: `multipart/form-data; boundary=${boundary}`, head, file, tail, length: head.length + file.byteLength + tail.length };
}

interface UploadInFlight {
  /** Bytes the request declared in Content-Length (0: sent chunked). */
  declared: number;
  /** Sends `bytes` more of the file. */
  send(bytes: number): void;
  /** Sends the rest of the body and reads the answer. */
  finish(): Promise<UploadResult>;
  /** The answer, whenever the server gives it. */
  result: Promise<UploadResult>;
  /** Cuts the connection, as a client that goes away does. */
  abort(): void;
}

/**
 * Starts an upload over node:http and sends only the multipart head, so the test decides when (and
 * whether) the file follows. `chunked`: no Content-Length, so the server can only count what arrives.
 */
function startUpload(user: TestUser, file: Uint8Array, { kind = null, chunked = false }: { kind?: string | null; chunked?: boolean } = {}): UploadInFlight {
  const body = multipartBody(file, kind);
  const request: ClientRequest = httpRequest(`${base}/graphql`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${user.accessToken}`,
      'content-type': body.contentType,
      ...(chunked ? {} : { 'content-length': String(body.length) }),
    },
  });
  const result = new Promise<UploadResult>((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (response) => {
      const pieces: Buffer[] = [];
      response.on('data', (piece: Buffer) => pieces.push(piece));
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode!,
          retryAfter: response.headers['retry-after'] ?? null,
          connection: response.headers.connection ?? null,
          ...JSON.parse(Buffer.concat(pieces).toString('utf8')),
        }),
      );
    });
  });
  result.catch(() => {}); // an aborted upload has no answer; tests that abort do not read it
  request.write(body.head);
  let sent = 0;
  return {
    declared: chunked ? 0 : body.length,
    send(bytes) {
      request.write(body.file.subarray(sent, sent + bytes));
      sent += bytes;
    },
    finish() {
      request.end(Buffer.concat([body.file.subarray(sent), body.tail]));
      return result;
    },
    result,
    abort: () => request.destroy(),
  };
}

/** An upload sent whole, the way browsers send FormData (with a Content-Length). */
const upload = (user: TestUser, file: Uint8Array, kind: string | null = null) => startUpload(user, file, { kind }).finish();

/** Three uploads whose declared bodies hold all but ~70 KiB of the budget until they are finished. */
async function fillBudget(): Promise<UploadInFlight[]> {
  const holders = [0, 1, 2].map(() => startUpload(alice, randomBytes(HOLDER_FILE_BYTES)));
  const declared = holders.reduce((sum, holder) => sum + holder.declared, 0);
  expect(declared).toBeLessThanOrEqual(BUDGET);
  expect(BUDGET - declared).toBeLessThan(100 * KiB);
  await until(() => memory().heldBytes === declared, 'the three holders have leased their declared bodies');
  return holders;
}

async function finishAll(holders: UploadInFlight[]) {
  const results = await Promise.all(holders.map((holder) => holder.finish()));
  for (const result of results) expect(result.data?.uploadFile.size).toBe(HOLDER_FILE_BYTES);
}

/** A noise PNG of ~854 KiB (noise does not compress): with a holder beside it, its working copies do not fit. */
async function noisePng(): Promise<Buffer> {
  const side = 540;
  const image = await sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } }).png().toBuffer();
  // The arithmetic of the image test: body + 2 copies fits alone, and with a holder only without the copies.
  expect(image.byteLength).toBeGreaterThan(720 * KiB);
  expect(image.byteLength).toBeLessThan(MAX_UPLOAD_BYTES - 8 * KiB);
  return image;
}

describe('upload memory budget', () => {
  it('serves uploads within the budget, refuses one beyond it with RATE_LIMITED after a short wait, and leaves other requests alone', async () => {
    const holders = await fillBudget();
    try {
      expect(await metric('kocmoc_upload_memory_bytes')).toBe(memory().heldBytes);

      const started = performance.now();
      const refused = upload(alice, randomBytes(100 * KiB));
      await until(() => memory().waiting === 1, 'the fourth upload waits for room');
      // Without a Content-Length, an upload leases its body as it arrives and waits in line mid-body.
      const refusedChunked = startUpload(alice, randomBytes(100 * KiB), { chunked: true }).finish();
      await until(() => memory().waiting === 2, 'the chunked upload waits for room too');
      expect(await metric('kocmoc_upload_memory_waiting')).toBe(2);

      // A plain GraphQL request does not wait for upload memory.
      const queryStarted = performance.now();
      const me = await gql(app, '{ me { id } }', {}, { token: alice.accessToken });
      expect(me.data?.me.id).toBe(alice.id);
      expect(performance.now() - queryStarted).toBeLessThan(UPLOAD_MEMORY_WAIT_MS / 2);

      for (const result of [await refused, await refusedChunked]) {
        expect(result.status).toBe(429);
        expect(result.retryAfter).toBe('2');
        expect(result.errors?.[0]).toMatchObject({
          message: 'The server is receiving too many uploads at once. Try again in a moment.',
          extensions: { code: 'RATE_LIMITED', retryAfterSeconds: 2 },
        });
      }
      const waitedMs = performance.now() - started;
      expect(waitedMs).toBeGreaterThanOrEqual(UPLOAD_MEMORY_WAIT_MS - 100);
      expect(waitedMs).toBeLessThan(UPLOAD_MEMORY_WAIT_MS + 2_000);
      expect(memory().waiting).toBe(0);
      expect(memory().heldBytes).toBe(holders.reduce((sum, holder) => sum + holder.declared, 0));
    } finally {
      await finishAll(holders);
    }
    expect(memory().heldBytes).toBe(0);
    expect(await metric('kocmoc_upload_memory_bytes')).toBe(0);
  });

  it('lets a waiting upload in as soon as another finishes', async () => {
    const holders = await fillBudget();
    const waiting = upload(alice, randomBytes(100 * KiB));
    await until(() => memory().waiting === 1, 'the fourth upload waits for room');
    await holders[0]!.finish();
    expect((await waiting).data?.uploadFile.size).toBe(100 * KiB);
    await finishAll(holders.slice(1));
    expect(memory().heldBytes).toBe(0);
  });

  it("counts an image's working copies: refused beside a holder where a file of its size fits, served alone", async () => {
    const image = await noisePng();
    const holder = startUpload(alice, randomBytes(HOLDER_FILE_BYTES));
    await until(() => memory().heldBytes === holder.declared, 'the holder has leased its body');

    const refused = await upload(alice, image, 'IMAGE');
    expect(refused.status).toBe(429);
    expect(codeOf(refused)).toBe('RATE_LIMITED');
    expect(memory().heldBytes).toBe(holder.declared);

    const asFile = await upload(alice, image, 'FILE');
    expect(asFile.data?.uploadFile.size).toBe(image.byteLength);

    expect((await holder.finish()).data?.uploadFile.size).toBe(HOLDER_FILE_BYTES);
    const alone = await upload(alice, image, 'IMAGE');
    expect(alone.data?.uploadFile.width).toBe(540);
    expect(memory().heldBytes).toBe(0);
  });

  it('gives back the bytes of uploads refused for their content, by the worker, or for their size', async () => {
    const notAnImage = await upload(alice, Buffer.from('%PDF-1.4\n%%EOF\n', 'latin1'), 'IMAGE');
    expect(codeOf(notAnImage)).toBe('BAD_USER_INPUT');
    expect(memory().heldBytes).toBe(0);

    const image = await noisePng();
    const truncated = await upload(alice, image.subarray(0, image.byteLength / 2), 'IMAGE');
    expect(truncated.errors?.[0]).toMatchObject({ message: 'The image could not be read (damaged or unsupported).', extensions: { code: 'BAD_USER_INPUT' } });
    expect(memory().heldBytes).toBe(0);

    const tooLarge = startUpload(alice, randomBytes(MAX_UPLOAD_BYTES + 200 * KiB), { chunked: true });
    const refused = await tooLarge.finish();
    expect(refused.status).toBe(413);
    expect(memory().heldBytes).toBe(0);
    // Refused half read, the body's connection is closed: kept alive, the next request on it would hang.
    expect(refused.connection).toBe('close');
    expect((await upload(alice, randomBytes(KiB))).data?.uploadFile.size).toBe(KiB);
  });

  it('gives back the bytes of clients that leave mid-upload, with or without a Content-Length', async () => {
    const declared = startUpload(alice, randomBytes(HOLDER_FILE_BYTES));
    declared.send(200 * KiB);
    await until(() => memory().heldBytes === declared.declared, 'the declared body is leased');
    declared.abort();
    await until(() => memory().heldBytes === 0, 'the aborted upload gave its lease back', UPLOAD_MEMORY_WAIT_MS / 2);

    const chunked = startUpload(alice, randomBytes(HOLDER_FILE_BYTES), { chunked: true });
    chunked.send(300 * KiB);
    await until(() => memory().heldBytes >= 300 * KiB, 'the chunked body is leased as it arrives');
    chunked.abort();
    await until(() => memory().heldBytes === 0, 'the aborted chunked upload gave its lease back', UPLOAD_MEMORY_WAIT_MS / 2);
  });

  it('stops waiting for room as soon as the waiting client leaves', async () => {
    const holders = await fillBudget();
    const held = memory().heldBytes;
    const leaving = startUpload(alice, randomBytes(100 * KiB));
    await until(() => memory().waiting === 1, 'the upload waits for room');
    const left = performance.now();
    leaving.abort();
    await until(() => memory().waiting === 0, 'the departed client no longer waits');
    expect(performance.now() - left).toBeLessThan(UPLOAD_MEMORY_WAIT_MS / 2);
    expect(memory().heldBytes).toBe(held);
    await finishAll(holders);
    expect(memory().heldBytes).toBe(0);
  });
});

describe('createUploadMemory', () => {
  it('serves waiters first come, first served: a small one does not overtake a large one', async () => {
    const budget = createUploadMemory({ limitBytes: 100, waitMs: 1_000 });
    const first = budget.lease();
    await first.grow(60);
    const large = budget.lease();
    const small = budget.lease();
    const order: string[] = [];
    const largeGranted = large.grow(80).then(() => order.push('large'));
    // 30 would fit beside the 60 held, but the large waiter is ahead of it.
    const smallGranted = small.grow(30).then(() => order.push('small'));
    await sleep(20);
    expect(budget.waiting).toBe(2);
    expect(budget.heldBytes).toBe(60);
    first.release();
    await largeGranted;
    expect(order).toEqual(['large']);
    large.release();
    await smallGranted;
    expect(order).toEqual(['large', 'small']);
    small.release();
    small.release(); // twice is harmless
    expect(budget.heldBytes).toBe(0);
  });

  it("spends one wait over a lease's grows, refuses what can never fit at once, and keeps nothing of a refusal", async () => {
    const budget = createUploadMemory({ limitBytes: 100, waitMs: 300 });
    const holder = budget.lease();
    await holder.grow(90);
    const lease = budget.lease();
    setTimeout(() => holder.release(), 250);
    await lease.grow(20); // waits ~250 of its 300 ms
    // 85 more does not fit beside its own 20: refused once the ~50 ms left are spent, not after another 300.
    const started = performance.now();
    await expect(lease.grow(85)).rejects.toMatchObject({ extensions: { code: 'RATE_LIMITED' } });
    expect(performance.now() - started).toBeLessThan(200);
    expect(budget.heldBytes).toBe(20);
    // More than the whole budget is refused without waiting.
    const hopeless = performance.now();
    await expect(budget.lease().grow(101)).rejects.toMatchObject({ extensions: { code: 'RATE_LIMITED' } });
    expect(performance.now() - hopeless).toBeLessThan(50);
    expect(budget.waiting).toBe(0);
    lease.release();
    expect(budget.heldBytes).toBe(0);
  });
});
