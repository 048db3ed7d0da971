// Files over a real port: multipart uploads of every kind, type sniffing, the streaming size limit,
// encrypted storage, downloads (access, signed links, ranges, ETags, safe headers) and clean-up.
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { deleteUnusedUploads } from '../src/files/cleanup.ts';
import { readEncryptedFile, writeEncryptedFile } from '../src/files/encrypted-files.ts';
import { encryptedSize, FILE_CHUNK_BYTES, HEADER_BYTES } from '../src/files/file-cipher.ts';
import { contentDisposition, sanitizeFileName } from '../src/files/file-names.ts';
import { parseRange } from '../src/files/ranges.ts';
import { signFileUrl } from '../src/files/signed-urls.ts';
import type { FileStorage } from '../src/files/storage.ts';
import { orientationExif } from '../workers/strip-metadata.ts';
import { isLosslessWebp, webpChunks } from '../workers/webp.ts';
import { codeOf, createChat, gql, pathOf, registerUser, startTestApp, startUploadTestApp, TEST_JWT_SECRET, type TestUser } from './support/helpers.ts';
import { DELETE_MESSAGE } from './support/operations.ts';

const MAX_UPLOAD_BYTES = 1024 * 1024;
const ATTACHMENT_FIELDS = 'id kind name mimeType size url width height durationMs thumbnailUrl createdAt';
const UPLOAD = `mutation ($file: File!, $kind: MessageKind) { uploadFile(file: $file, kind: $kind) { ${ATTACHMENT_FIELDS} } }`;
const SEND = 'mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id kind attachment { id url thumbnailUrl } } }';

let app: App;
let base: string;
let uploadDir: string;
let stopApp: (() => Promise<void>) | undefined;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let group: string;
/** Every process warning while this file runs: a FileHandle left to the garbage collector shows up here. */
const warnings: Error[] = [];
const collectWarning = (warning: Error) => warnings.push(warning);
/** Node's warnings (and DEP0137) for FileHandles the garbage collector had to close. */
const handlesClosedByGc = () => warnings.map((warning) => warning.message).filter((message) => /on garbage collection/.test(message));

beforeAll(async () => {
  process.on('warning', collectWarning);
  ({ app, base, uploadDir, stop: stopApp } = await startUploadTestApp({ MAX_UPLOAD_BYTES: String(MAX_UPLOAD_BYTES) }));
  [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Files', memberIds: [bob.id] });
});
afterAll(async () => {
  process.off('warning', collectWarning);
  await stopApp?.();
});

interface UploadOptions {
  name?: string;
  /** What the client claims; the server must not believe it. */
  type?: string;
  kind?: string | null;
  token?: string | null;
}

/** A GraphQL multipart request (operations, map, one file) over the real port. */
async function upload(user: TestUser, bytes: Uint8Array, { name = 'upload.bin', type = 'application/octet-stream', kind = null, token }: UploadOptions = {}) {
  const form = new FormData();
  form.set('operations', JSON.stringify({ query: UPLOAD, variables: { file: null, kind } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([bytes as Uint8Array<ArrayBuffer>], { type }), name);
  const authToken = token === undefined ? user.accessToken : token;
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: authToken ? { authorization: `Bearer ${authToken}` } : {},
    body: form,
  });
  const body = (await response.json()) as { data?: { uploadFile: any } | null; errors?: Array<{ message: string; extensions?: Record<string, any> }> };
  return { ...body, response };
}

async function uploaded(user: TestUser, bytes: Uint8Array, options: UploadOptions = {}) {
  const result = await upload(user, bytes, options);
  if (!result.data?.uploadFile) throw new Error(`upload failed: ${JSON.stringify(result.errors)}`);
  return result.data.uploadFile as { id: string; kind: string | null; name: string; mimeType: string; size: number; url: string; thumbnailUrl: string | null; width: number | null; height: number | null; durationMs: number | null };
}

async function send(user: TestUser, kind: string, attachmentId: string, chatId = group) {
  const result = await gql(app, SEND, { input: { chatId, kind, attachmentId } }, { token: user.accessToken });
  if (!result.data?.sendMessage) throw new Error(`send failed: ${JSON.stringify(result.errors)}`);
  return result.data.sendMessage as { id: string; attachment: { id: string; url: string; thumbnailUrl: string | null } };
}

const download = (path: string, token?: string | null, headers: Record<string, string> = {}) =>
  fetch(`${base}${pathOf(path)}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

const bytesOf = async (response: Response) => new Uint8Array(await response.arrayBuffer());

const png = (width = 640, height = 480) =>
  sharp({ create: { width, height, channels: 3, background: { r: 200, g: 60, b: 30 } } }).png().toBuffer();

/** A valid PCM WAV: mono, 16-bit, `sampleRate` Hz, `ms` of a quiet tone. */
function wav(ms: number, sampleRate = 8_000): Uint8Array {
  const samples = Math.round((sampleRate * ms) / 1_000);
  const out = Buffer.alloc(44 + samples * 2);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + samples * 2, 4);
  out.write('WAVEfmt ', 8, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20); // PCM
  out.writeUInt16LE(1, 22); // mono
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28); // byte rate
  out.writeUInt16LE(2, 32); // block align
  out.writeUInt16LE(16, 34); // bits per sample
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(samples * 2, 40);
  for (let i = 0; i < samples; i++) out.writeInt16LE(Math.round(2_000 * Math.sin((2 * Math.PI * 440 * i) / sampleRate)), 44 + i * 2);
  return out;
}

/** One Ogg page header with a single segment of `bodyBytes` (CRC left 0: nothing here checks it). */
function oggPage(headerType: number, granule: bigint, sequence: number, body: Uint8Array): Buffer {
  const page = Buffer.alloc(28);
  page.write('OggS', 0, 'latin1');
  page[5] = headerType;
  page.writeBigInt64LE(granule, 6);
  page.writeUInt32LE(0x6b6f63, 14); // serial
  page.writeUInt32LE(sequence, 18);
  page[26] = 1;
  page[27] = body.byteLength;
  return Buffer.concat([page, body]);
}

/**
 * An Ogg/Opus recording of `ms` (48 kHz granules after a 312-sample pre-skip) padded to about
 * `bytes` with pages of opaque packets, so its first and last pages are far apart.
 */
function oggOpus(ms: number, bytes: number): Buffer {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1; // version
  head[9] = 1; // channels
  head.writeUInt16LE(312, 10); // pre-skip
  head.writeUInt32LE(48_000, 12);
  const pages = [oggPage(2, 0n, 0, head)];
  const packet = Buffer.alloc(255, 0x2a);
  for (let size = pages[0]!.byteLength; size < bytes; size += 28 + packet.byteLength) pages.push(oggPage(0, -1n, pages.length, packet));
  pages.push(oggPage(4, BigInt(312 + (ms * 48_000) / 1_000), pages.length, packet));
  return Buffer.concat(pages);
}

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'latin1');

/** The one stored object named `key` under UPLOAD_DIR, wherever the disk layout put it. */
function storedPath(key: string): string {
  const found = readdirSync(uploadDir, { recursive: true, encoding: 'utf8' }).filter((path) => path.split('/').pop() === key);
  expect(found).toHaveLength(1);
  return join(uploadDir, found[0]!);
}

describe('uploadFile', () => {
  it('takes an IMAGE, measures it, makes a thumbnail, and sends it', async () => {
    const image = await uploaded(alice, await png(640, 480), { name: 'photo.png', kind: 'IMAGE' });
    expect(image).toMatchObject({ kind: 'IMAGE', name: 'photo.png', mimeType: 'image/png', width: 640, height: 480, durationMs: null });
    expect(image.url).toMatch(new RegExp(`^http://[^/]+/files/${image.id}\\?u=${alice.id}&expires=\\d+&sig=[\\w-]+$`));
    expect(image.thumbnailUrl).toMatch(new RegExp(`^http://[^/]+/files/${image.id}/thumbnail\\?`));

    const message = await send(alice, 'IMAGE', image.id);
    expect(message.attachment.id).toBe(image.id);

    const thumbnail = await download(image.thumbnailUrl!);
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get('content-type')).toBe('image/webp');
    const metadata = await sharp(await bytesOf(thumbnail)).metadata();
    expect(metadata).toMatchObject({ format: 'webp', width: 320, height: 240 });
  });

  it('reports an image as displayed, after its EXIF orientation', async () => {
    const rotated = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#08f' } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const image = await uploaded(alice, rotated, { name: 'portrait.jpg', kind: 'IMAGE' });
    expect(image).toMatchObject({ mimeType: 'image/jpeg', width: 200, height: 400 });
    const thumbnail = await sharp(await bytesOf(await download(image.thumbnailUrl!))).metadata();
    expect([thumbnail.width, thumbnail.height]).toEqual([160, 320]);
  });

  it('takes a VOICE recording, with its duration, and sends it', async () => {
    const voice = await uploaded(alice, wav(1_500), { name: 'note.wav', kind: 'VOICE' });
    expect(voice).toMatchObject({ kind: 'VOICE', mimeType: 'audio/wav', durationMs: 1_500, thumbnailUrl: null, width: null });
    expect((await send(alice, 'VOICE', voice.id)).attachment.id).toBe(voice.id);
  });

  it('reads the durations of recordings larger than what is read of them: WAV by its size, Ogg by its last page', async () => {
    // Only the first 64 KiB and the last 128 KiB are read, never the whole recording.
    const longWav = wav(30_000);
    expect(longWav.byteLength).toBeGreaterThan(256 * 1024);
    expect(await uploaded(alice, longWav, { name: 'long.wav', kind: 'VOICE' })).toMatchObject({ mimeType: 'audio/wav', durationMs: 30_000, size: longWav.byteLength });
    const ogg = oggOpus(42_500, 400 * 1024);
    expect(await uploaded(alice, ogg, { name: 'long.opus', kind: 'VOICE' })).toMatchObject({ mimeType: 'audio/ogg; codecs=opus', durationMs: 42_500, size: ogg.byteLength });
  });

  it('takes any FILE, typed by its content', async () => {
    const pdf = await uploaded(alice, PDF, { name: 'report.pdf', type: 'text/plain', kind: 'FILE' });
    expect(pdf).toMatchObject({ kind: 'FILE', mimeType: 'application/pdf', size: PDF.length, thumbnailUrl: null });
    const noise = await uploaded(alice, randomBytes(5_000), { name: 'noise.bin' });
    expect(noise).toMatchObject({ kind: null, mimeType: 'application/octet-stream', size: 5_000 });
    expect((await send(alice, 'FILE', pdf.id)).attachment.id).toBe(pdf.id);
    expect((await send(alice, 'FILE', noise.id)).attachment.id).toBe(noise.id);
  });

  it('ignores the type the client declares', async () => {
    const text = Buffer.from('just some text, not a picture\n');
    const asFile = await uploaded(alice, text, { name: 'fake.png', type: 'image/png' });
    expect(asFile.mimeType).toBe('application/octet-stream');
    const asImage = await upload(alice, text, { name: 'fake.png', type: 'image/png', kind: 'IMAGE' });
    expect(asImage.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'file' });
  });

  it.each([
    ['text as IMAGE', () => Buffer.from('hello'), 'IMAGE', 'file', /IMAGE must be a JPEG, PNG/],
    ['a PNG as VOICE', () => png(10, 10), 'VOICE', 'file', /VOICE recording must be .* \(this is image\/png\)/],
    ['a PDF as IMAGE', () => PDF, 'IMAGE', 'file', /\(this is application\/pdf\)/],
    ['an image with broken pixel data', async () => (await png(200, 200)).subarray(0, 120), 'IMAGE', 'file', /could not be read/],
    ['an empty file', () => Buffer.alloc(0), 'FILE', 'file', /empty/],
    ['kind TEXT', () => Buffer.from('hello'), 'TEXT', 'kind', /IMAGE, VOICE or FILE/],
    ['kind LOCATION', () => Buffer.from('hello'), 'LOCATION', 'kind', /IMAGE, VOICE or FILE/],
  ])('refuses %s with BAD_USER_INPUT', async (_case, bytes, kind, field, message) => {
    const result = await upload(alice, await bytes(), { kind });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(result.errors?.[0]?.message).toMatch(message);
  });

  it('refuses uploads without a signed-in user, before reading them', async () => {
    const anonymous = await upload(alice, Buffer.from('x'), { token: null });
    expect(anonymous.response.status).toBe(401);
    expect(codeOf(anonymous)).toBe('UNAUTHENTICATED');
    const badToken = await upload(alice, Buffer.from('x'), { token: 'not-a-token' });
    expect(codeOf(badToken)).toBe('UNAUTHENTICATED');
  });

  it('refuses a File variable that is not an upload', async () => {
    const result = await gql(app, UPLOAD, { file: 'not a file' }, { token: alice.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
  });

  it('cleans file names', async () => {
    const file = await uploaded(alice, Buffer.from('x'), { name: `../../etc/\u202Egpj.exe\u0007${'a'.repeat(400)}.txt` });
    expect(file.name).toMatch(/^gpj\.exea+\.txt$/);
    expect(Buffer.byteLength(file.name)).toBeLessThanOrEqual(255);
    expect(sanitizeFileName('..')).toBe('file');
    expect(sanitizeFileName('C:\\Users\\me\\report.pdf')).toBe('report.pdf');
  });
});

describe('upload size limit', () => {
  it('refuses a file over MAX_UPLOAD_BYTES by its Content-Length, before reading it', async () => {
    const result = await upload(alice, new Uint8Array(5 * MAX_UPLOAD_BYTES));
    expect(result.response.status).toBe(413);
    expect(result.errors?.[0]).toMatchObject({ message: 'The file is larger than the upload limit of 1 MiB.', extensions: { code: 'BAD_USER_INPUT', field: 'file' } });
  });

  it('refuses a file just over the limit that fits the multipart allowance', async () => {
    const result = await upload(alice, new Uint8Array(MAX_UPLOAD_BYTES + 1));
    expect(result.errors?.[0]).toMatchObject({ message: 'The file is larger than the upload limit of 1 MiB.', extensions: { code: 'BAD_USER_INPUT', field: 'file' } });
    expect((await uploaded(alice, new Uint8Array(MAX_UPLOAD_BYTES))).size).toBe(MAX_UPLOAD_BYTES);
  });

  it('cuts off a streamed 200 MiB body without a Content-Length soon after the limit, without buffering it', async () => {
    const boundary = 'kocmoc-test-boundary';
    const operations = JSON.stringify({ query: UPLOAD, variables: { file: null } });
    const head =
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${operations}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.file"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="huge.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const total = 200 * 1024 * 1024;
    const piece = new Uint8Array(64 * 1024);
    let pulled = 0;
    // Generated as the request pulls it: `pulled` is how much the server let in before answering.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(head));
      },
      pull(controller) {
        if (pulled >= total) {
          controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
          controller.close();
          return;
        }
        pulled += piece.byteLength;
        controller.enqueue(piece);
      },
    });
    const started = performance.now();
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice.accessToken}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      body,
      duplex: 'half',
    } as RequestInit);
    const result = (await response.json()) as { errors?: Array<{ message: string; extensions: Record<string, unknown> }> };
    const elapsedMs = performance.now() - started;

    expect(response.status).toBe(413);
    expect(result.errors?.[0]).toMatchObject({ message: 'The file is larger than the upload limit of 1 MiB.', extensions: { code: 'BAD_USER_INPUT', field: 'file' } });
    // The limit is 1 MiB; what got past it is socket and stream buffering, a few MiB at most, not 200.
    expect(pulled).toBeLessThan(16 * 1024 * 1024);
    expect(elapsedMs).toBeLessThan(5_000);
  });
});

describe('downloads', () => {
  it('lets the uploader download an unsent upload, and nobody else', async () => {
    const bytes = randomBytes(3_000);
    const file = await uploaded(alice, bytes);
    const own = await download(`/files/${file.id}`, alice.accessToken);
    expect(own.status).toBe(200);
    expect(Buffer.from(await bytesOf(own))).toEqual(bytes);

    for (const other of [bob, carol]) {
      const refused = await download(`/files/${file.id}`, other.accessToken);
      expect(refused.status).toBe(404);
      expect(await refused.json()).toEqual({ errors: [{ message: 'File not found.', extensions: { code: 'NOT_FOUND' } }] });
    }
  });

  it('lets members of the chat it was sent in download it; not outsiders, and not after it is deleted', async () => {
    const bytes = randomBytes(2_000);
    const file = await uploaded(alice, bytes);
    const message = await send(alice, 'FILE', file.id);

    const member = await download(`/files/${file.id}`, bob.accessToken);
    expect(member.status).toBe(200);
    expect(Buffer.from(await bytesOf(member))).toEqual(bytes);
    // 404 rather than 403: an outsider cannot even tell the file exists.
    expect((await download(`/files/${file.id}`, carol.accessToken)).status).toBe(404);
    expect((await download(`/files/no-such-file`, alice.accessToken)).status).toBe(404);

    await gql(app, DELETE_MESSAGE, { id: message.id }, { token: alice.accessToken });
    expect((await download(`/files/${file.id}`, bob.accessToken)).status).toBe(404);
    expect((await download(`/files/${file.id}`, alice.accessToken)).status).toBe(200);
  });

  it('answers 401 without credentials and with a bad token, as JSON errors', async () => {
    const file = await uploaded(alice, Buffer.from('secret'));
    const anonymous = await download(`/files/${file.id}`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    const badToken = await download(`/files/${file.id}`, 'not-a-token');
    expect(badToken.status).toBe(401);
    expect(((await badToken.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('serves single byte ranges across chunks, suffix ranges, and 416 outside the file', async () => {
    const size = 3 * FILE_CHUNK_BYTES + 1_234;
    const bytes = randomBytes(size);
    const file = await uploaded(alice, bytes, { kind: 'FILE' });
    const ranged = (range: string) => download(`/files/${file.id}`, alice.accessToken, { range });

    const middle = await ranged('bytes=100-70000');
    expect(middle.status).toBe(206);
    expect(middle.headers.get('content-range')).toBe(`bytes 100-70000/${size}`);
    expect(middle.headers.get('content-length')).toBe('69901');
    expect(Buffer.from(await bytesOf(middle))).toEqual(bytes.subarray(100, 70_001));

    const suffix = await ranged('bytes=-500');
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe(`bytes ${size - 500}-${size - 1}/${size}`);
    expect(Buffer.from(await bytesOf(suffix))).toEqual(bytes.subarray(size - 500));

    const open = await ranged(`bytes=${2 * FILE_CHUNK_BYTES}-`);
    expect(open.status).toBe(206);
    expect(Buffer.from(await bytesOf(open))).toEqual(bytes.subarray(2 * FILE_CHUNK_BYTES));

    const outside = await ranged(`bytes=${size}-`);
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${size}`);
    await outside.arrayBuffer();

    const multiple = await ranged('bytes=0-1,5-6');
    expect(multiple.status).toBe(200);
    expect((await bytesOf(multiple)).byteLength).toBe(size);

    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=5-1', 10)).toEqual({ kind: 'whole' });
    expect(parseRange('bytes=-20', 10)).toEqual({ kind: 'partial', range: { start: 0, end: 9 } });
  });

  it('serves an image whose row says size 0 (recorded so before sizes were fixed) in full', async () => {
    const file = await uploaded(alice, await png(64, 32), { kind: 'IMAGE' });
    const whole = Buffer.from(await (await download(`/files/${file.id}`, alice.accessToken)).arrayBuffer());
    await app.services.prisma.attachment.update({ where: { id: file.id }, data: { size: 0 } });
    const response = await download(`/files/${file.id}`, alice.accessToken);
    expect(response.headers.get('content-length')).toBe(String(whole.length));
    expect(Buffer.from(await response.arrayBuffer()).equals(whole)).toBe(true);
  });

  it('revalidates with ETag and If-None-Match (304), and answers HEAD without a body', async () => {
    const file = await uploaded(alice, randomBytes(1_000));
    const first = await download(`/files/${file.id}`, alice.accessToken);
    const etag = first.headers.get('etag');
    expect(etag).toBe(`"${file.id}"`);
    // With Authorization (no expiring link), the client asks again each time; the ETag makes that cheap.
    expect(first.headers.get('cache-control')).toBe('private, no-cache');
    await first.arrayBuffer();

    const revalidated = await download(`/files/${file.id}`, alice.accessToken, { 'if-none-match': etag! });
    expect(revalidated.status).toBe(304);
    expect((await bytesOf(revalidated)).byteLength).toBe(0);

    const head = await fetch(`${base}/files/${file.id}`, { method: 'HEAD', headers: { authorization: `Bearer ${alice.accessToken}` } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('1000');
  });

  it('works from a signed link without Authorization, and refuses altered links', async () => {
    const file = await uploaded(alice, await png(100, 50), { kind: 'IMAGE' });
    const message = await send(alice, 'IMAGE', file.id);
    // Bob's own link, from the message as he sees it.
    const bobsLink = message.attachment.url.replace(`u=${alice.id}`, `u=${bob.id}`);
    const page = await gql(app, `query ($id: ID!) { chat(id: $id) { messages(last: 1) { edges { node { attachment { url thumbnailUrl } } } } } }`, { id: group }, { token: bob.accessToken });
    const { url, thumbnailUrl } = page.data.chat.messages.edges[0].node.attachment;
    expect(url).toContain(`u=${bob.id}`);
    const viaLink = await download(url);
    expect(viaLink.status).toBe(200);
    expect((await download(thumbnailUrl)).status).toBe(200);
    const expires = Number(new URL(url, base).searchParams.get('expires'));
    // FILE_URL_TTL (5 minutes) rounded up to a quarter of it, so repeated queries give the same URL.
    expect(expires * 1_000 - Date.now()).toBeGreaterThan(4 * 60_000);
    expect(expires * 1_000 - Date.now()).toBeLessThanOrEqual(5 * 60_000 * 1.25 + 1_000);
    // The browser may reuse the file until the link expires, without asking again.
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(viaLink.headers.get('cache-control') ?? '')?.[1]);
    expect(maxAge).toBeGreaterThan(4 * 60);
    expect(maxAge).toBeLessThanOrEqual(expires - Math.floor(Date.now() / 1_000) + 1);

    const refusals = [
      bobsLink, // someone else's signature with Bob's id swapped in
      url.replace(/sig=[\w-]{4}/, 'sig=AAAA'),
      url.replace(/expires=\d+/, `expires=${expires + 3_600}`),
      thumbnailUrl.replace('/thumbnail?', '?'), // a thumbnail link used for the original
    ];
    for (const link of refusals) {
      const refused = await download(link);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as any).errors[0]).toEqual({ message: 'This link is not valid.', extensions: { code: 'FORBIDDEN' } });
    }
    // A valid link for someone who cannot see the file is as good as nothing.
    const carolsLink = signFileUrl(TEST_JWT_SECRET, { attachmentId: file.id, variant: 'original', viewerId: carol.id }, 60_000);
    expect((await download(carolsLink)).status).toBe(404);
  });

  it('stops honouring a signed link once it expires (FILE_URL_TTL)', async () => {
    const shortLived = await startTestApp({ UPLOAD_DIR: uploadDir, FILE_URL_TTL: '1s' });
    try {
      const file = await uploaded(alice, Buffer.from('short-lived'));
      const query = `query ($id: ID!) { chat(id: $id) { messages(last: 1) { edges { node { attachment { url } } } } } }`;
      await send(alice, 'FILE', file.id);
      const page = await gql(shortLived, query, { id: group }, { token: bob.accessToken });
      const url: string = page.data.chat.messages.edges[0].node.attachment.url;
      const fetchLink = () => shortLived.yoga.fetch(url);
      expect((await fetchLink()).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const expired = await fetchLink();
      expect(expired.status).toBe(403);
      expect(((await expired.json()) as any).errors[0]).toMatchObject({ message: expect.stringMatching(/expired/), extensions: { code: 'FORBIDDEN' } });
    } finally {
      await shortLived.stop();
    }
  });

  it('sends safe headers, even for a hostile file name', async () => {
    const hostile = '"evil\r\nSet-Cookie: x=1.png';
    // Through a standard client: FormData escapes the quote and line break on the wire.
    const sent = await uploaded(alice, Buffer.from('<html><script>alert(1)</script></html>'), { name: hostile, type: 'text/html', kind: 'FILE' });
    expect(sent.name).not.toMatch(/[\r\n"]/);
    expect(sent.mimeType).toBe('application/octet-stream');
    const served = await download(`/files/${sent.id}`, alice.accessToken);
    expect(served.status).toBe(200);
    expect(served.headers.get('set-cookie')).toBeNull();
    expect(served.headers.get('content-disposition')).toMatch(/^attachment; filename="[^"\r\n]*"; filename\*=UTF-8''[\w%.!~-]+$/);
    expect(served.headers.get('x-content-type-options')).toBe('nosniff');
    expect(served.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    expect(served.headers.get('content-type')).toBe('application/octet-stream');
    await served.arrayBuffer();

    // The raw name, as if it had reached the database unfiltered (busboy drops parts whose name has
    // a bare line break): the header still cannot be split.
    const raw = await app.services.prisma.attachment.create({
      data: { uploaderId: alice.id, name: hostile, mimeType: 'image/png', size: 1, storageKey: `${sent.id}-raw` },
    });
    const { keyId } = await writeEncryptedFile(app.services.storage, app.services.config.messageEncryption, raw.storageKey, [Buffer.from('x')], 1);
    await app.services.prisma.attachment.update({ where: { id: raw.id }, data: { contentKeyId: keyId } });
    const rawServed = await download(`/files/${raw.id}`, alice.accessToken);
    expect(rawServed.status).toBe(200);
    expect(rawServed.headers.get('set-cookie')).toBeNull();
    expect(rawServed.headers.get('content-disposition')).toBe(
      `inline; filename="_evil__Set-Cookie: x=1.png"; filename*=UTF-8''%22evil%0D%0ASet-Cookie%3A%20x%3D1.png`,
    );
    await rawServed.arrayBuffer();
    expect(contentDisposition('attachment', 'b\u00e9\ud800.txt')).toBe(`attachment; filename="be_.txt"; filename*=UTF-8''b%C3%A9%EF%BF%BD.txt`);
  });

  it('shows images inline and everything else as an attachment', async () => {
    const image = await uploaded(alice, await png(20, 20), { name: 'pic.png', kind: 'IMAGE' });
    const shown = await download(`/files/${image.id}`, alice.accessToken);
    expect(shown.headers.get('content-disposition')).toMatch(/^inline; filename="pic.png"/);
    await shown.arrayBuffer();
    const pdf = await uploaded(alice, PDF, { name: 'doc.pdf' });
    const saved = await download(`/files/${pdf.id}`, alice.accessToken);
    expect(saved.headers.get('content-type')).toBe('application/pdf');
    expect(saved.headers.get('content-disposition')).toMatch(/^attachment; filename="doc.pdf"/);
    await saved.arrayBuffer();
  });
});

describe('image metadata', () => {
  const CAMERA = 'KocmocCam-SN-0042';
  /** Where and with what a photo was taken: what must not reach the chat. */
  const EXIF = {
    IFD0: { Make: CAMERA, Model: 'Spy 1' },
    IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '55/1 45/1 2136/100', GPSLongitudeRef: 'E', GPSLongitude: '37/1 37/1 1188/100' },
  };
  const XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:creator="Alice at home"/></rdf:RDF></x:xmpmeta>';
  const COMMENT = 'Shot at 12 Secret Lane';

  /** Random pixels: any re-encoding would change them, so equal pixels prove a lossless strip. */
  const noise = (width: number, height: number) => sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } });
  const pixelsOf = (image: Uint8Array) => sharp(image).raw().toBuffer();
  const contains = (bytes: Uint8Array, text: string) => Buffer.from(bytes).includes(text, 0, 'latin1');

  /** `jpeg` with `segments` (marker, payload) inserted after SOI, as cameras and editors place them. */
  function withJpegSegments(jpeg: Buffer, segments: Array<[marker: number, payload: Buffer]>): Buffer {
    const encoded = segments.map(([marker, payload]) => {
      const header = Buffer.from([0xff, marker, 0, 0]);
      header.writeUInt16BE(payload.length + 2, 2);
      return Buffer.concat([header, payload]);
    });
    return Buffer.concat([jpeg.subarray(0, 2), ...encoded, jpeg.subarray(2)]);
  }

  /** `png` with a `type` chunk inserted after IHDR (8-byte signature + 25-byte IHDR). */
  function withPngChunk(png: Buffer, type: string, data: Buffer): Buffer {
    const chunk = Buffer.alloc(12 + data.length);
    chunk.writeUInt32BE(data.length, 0);
    chunk.write(type, 4, 'latin1');
    data.copy(chunk, 8);
    chunk.writeUInt32BE(crc32(chunk.subarray(4, 8 + data.length)), 8 + data.length);
    return Buffer.concat([png.subarray(0, 33), chunk, png.subarray(33)]);
  }

  /** `gif` with a comment extension and an XMP application extension before its trailer. */
  function withGifMetadata(gif: Buffer, comment: string, xmp: string): Buffer {
    const subBlocks = (data: Buffer) => Buffer.concat([Buffer.from([data.length]), data, Buffer.from([0])]); // all under 256 bytes here
    const commentExtension = Buffer.concat([Buffer.from([0x21, 0xfe]), subBlocks(Buffer.from(comment, 'latin1'))]);
    const xmpExtension = Buffer.concat([Buffer.from([0x21, 0xff, 11]), Buffer.from('XMP DataXMP', 'latin1'), subBlocks(Buffer.from(xmp, 'latin1'))]);
    return Buffer.concat([gif.subarray(0, -1), commentExtension, xmpExtension, gif.subarray(-1)]);
  }

  /** Uploads `bytes` as an IMAGE and downloads the stored original, checking the recorded size against it. */
  async function storedImage(bytes: Buffer, name: string) {
    const image = await uploaded(alice, bytes, { name, kind: 'IMAGE' });
    const stored = await bytesOf(await download(`/files/${image.id}`, alice.accessToken));
    expect(image.size).toBe(stored.byteLength);
    return { image, stored, metadata: await sharp(stored).metadata() };
  }

  it('stores a JPEG without EXIF (GPS, camera), XMP, IPTC or comments, and with its pixels untouched', async () => {
    const iptc = Buffer.concat([Buffer.from('Photoshop 3.0\0', 'latin1'), Buffer.from(`8BIM\x04\x04\0\0\0\0\0\x1c\x1c\x02\x5a\0\x18${'Moscow, 12 Secret Lane..'}`, 'latin1')]);
    const encoded = await noise(300, 200).jpeg({ quality: 90 }).withExif(EXIF).withXmp(XMP).withIccProfile('p3').toBuffer();
    // After the image's end, a second picture with its own EXIF, as MPF and motion photos append them.
    const appended = await noise(16, 16).jpeg().withExif(EXIF).toBuffer();
    const photo = Buffer.concat([
      withJpegSegments(encoded, [
        [0xfe, Buffer.from(COMMENT, 'latin1')],
        [0xed, iptc],
      ]),
      appended,
    ]);
    const sent = await sharp(photo).metadata();
    expect(sent.exif?.includes(CAMERA)).toBe(true);
    expect([sent.xmp, sent.iptc].every(Boolean)).toBe(true);

    const { image, stored, metadata } = await storedImage(photo, 'gps.jpg');
    expect(image).toMatchObject({ mimeType: 'image/jpeg', width: 300, height: 200 });
    expect(metadata).toMatchObject({ format: 'jpeg', width: 300, height: 200 });
    expect({ exif: metadata.exif, xmp: metadata.xmp, iptc: metadata.iptc, orientation: metadata.orientation }).toEqual({});
    for (const text of [CAMERA, 'Exif\0\0', 'Alice at home', 'Photoshop 3.0', COMMENT]) expect(contains(stored, text), text).toBe(false);
    // Lossless: the colour profile is kept and the decoded pixels are the same as the upload's.
    expect(metadata.icc).toEqual(sent.icc);
    expect(await pixelsOf(stored)).toEqual(await pixelsOf(photo));
    expect(stored.byteLength).toBeLessThan(photo.byteLength);
  });

  /** 400x200, red on the left, blue on the right, with camera and GPS EXIF; orientation 6 shows it turned 90° clockwise. */
  const sideways = (encode: (image: Sharp) => Sharp) =>
    encode(
      sharp({ create: { width: 400, height: 200, channels: 3, background: '#00f' } }).composite([
        { input: { create: { width: 200, height: 200, channels: 3, background: '#f00' } }, left: 0, top: 0 },
      ]),
    )
      .withExif(EXIF)
      .withMetadata({ orientation: 6 })
      .toBuffer();

  /** The colour at each [x, y] of `image` as a viewer shows it (orientation applied), as a name. */
  async function coloursShown(image: Uint8Array, points: Array<[x: number, y: number]>) {
    const { data, info } = await sharp(image).autoOrient().raw().toBuffer({ resolveWithObject: true });
    return points.map(([x, y]) => {
      const [r = 0, g = 0, b = 0] = data.subarray((y * info.width + x) * info.channels);
      return r > 200 && g < 60 && b < 60 ? 'red' : b > 200 && r < 60 && g < 60 ? 'blue' : `rgb(${r}, ${g}, ${b})`;
    });
  }

  /** A JPEG from its first SOS on: the scans, as the encoder wrote them, up to and with EOI. */
  function scanData(jpeg: Uint8Array): Buffer {
    const bytes = Buffer.from(jpeg);
    let pos = 2;
    while (bytes[pos + 1] !== 0xda) pos += 2 + bytes.readUInt16BE(pos + 2);
    return bytes.subarray(pos);
  }

  /** IFD0 of an EXIF block (after "Exif\0\0"): each entry's tag, type, count and value (a SHORT's), and where a next IFD would be. */
  function ifd0(exif: Buffer) {
    const tiff = exif.subarray(6);
    const bigEndian = tiff.toString('latin1', 0, 2) === 'MM';
    const u16 = (at: number) => (bigEndian ? tiff.readUInt16BE(at) : tiff.readUInt16LE(at));
    const u32 = (at: number) => (bigEndian ? tiff.readUInt32BE(at) : tiff.readUInt32LE(at));
    const start = u32(4);
    const entries = Array.from({ length: u16(start) }, (_, i) => start + 2 + 12 * i).map((at) => [u16(at), u16(at + 2), u32(at + 4), u16(at + 8)]);
    return { entries, nextIfd: u32(start + 2 + 12 * entries.length) };
  }

  /** Whether an EXIF block has the tag that points to a GPS IFD (0x8825), in either byte order. */
  const pointsToGps = (exif: Buffer) => exif.includes(Buffer.from([0x88, 0x25])) || exif.includes(Buffer.from([0x25, 0x88]));

  it('stores a portrait JPEG losslessly, with its orientation as the only EXIF left', async () => {
    const photo = await sideways((image) => image.jpeg({ quality: 90 }));
    const sent = await sharp(photo).metadata();
    expect(sent).toMatchObject({ orientation: 6, width: 400, height: 200 });
    expect(sent.exif?.includes(CAMERA)).toBe(true);
    expect(pointsToGps(sent.exif!)).toBe(true);

    const { image, stored, metadata } = await storedImage(photo, 'portrait.jpg');
    // Reported as displayed; stored as encoded, with the tag that turns it.
    expect(image).toMatchObject({ mimeType: 'image/jpeg', width: 200, height: 400 });
    expect(metadata).toMatchObject({ format: 'jpeg', width: 400, height: 200, orientation: 6, autoOrient: { width: 200, height: 400 } });
    // The EXIF holds the orientation and nothing else: no camera, no GPS IFD, no next IFD (a thumbnail's).
    expect(ifd0(metadata.exif!)).toEqual({ entries: [[0x0112, 3, 1, 6]], nextIfd: 0 });
    expect(pointsToGps(metadata.exif!)).toBe(false);
    expect({ xmp: metadata.xmp, iptc: metadata.iptc }).toEqual({});
    for (const text of [CAMERA, 'Spy 1']) expect(contains(stored, text), text).toBe(false);
    // Lossless and not re-encoded: the same scans byte for byte, the same profile.
    expect(scanData(stored).equals(scanData(photo))).toBe(true);
    expect(metadata.icc).toEqual(sent.icc);
    expect(stored.byteLength).toBeLessThan(photo.byteLength);
    // Shown turned clockwise: the red left half on top. The thumbnail is upright in its pixels.
    expect(await coloursShown(stored, [[100, 100], [100, 300]])).toEqual(['red', 'blue']);
    const thumbnail = await bytesOf(await download(image.thumbnailUrl!));
    const thumbnailMetadata = await sharp(thumbnail).metadata();
    expect(thumbnailMetadata).toMatchObject({ width: 160, height: 320 });
    expect({ orientation: thumbnailMetadata.orientation, exif: thumbnailMetadata.exif }).toEqual({});
    expect(await coloursShown(thumbnail, [[80, 80], [80, 240]])).toEqual(['red', 'blue']);
  });

  it.each([
    ['PNG', 'png', (image: Sharp) => image.png()],
    ['WebP', 'webp', (image: Sharp) => image.webp({ lossless: true })],
  ])('turns a %s with an EXIF orientation upright, as browsers would not apply the tag', async (_format, format, encode) => {
    const photo = await sideways(encode);
    expect(await sharp(photo).metadata()).toMatchObject({ format, orientation: 6 });

    const { image, stored, metadata } = await storedImage(photo, 'portrait');
    expect(image).toMatchObject({ width: 200, height: 400 });
    expect(metadata).toMatchObject({ format, width: 200, height: 400 });
    expect({ orientation: metadata.orientation, exif: metadata.exif }).toEqual({});
    expect(contains(stored, CAMERA)).toBe(false);
    expect(await coloursShown(stored, [[100, 100], [100, 300]])).toEqual(['red', 'blue']);
  });

  it('writes an orientation EXIF that libvips reads, for every orientation', async () => {
    const plain = await noise(40, 20).jpeg().toBuffer();
    for (let orientation = 1; orientation <= 8; orientation++) {
      const tagged = withJpegSegments(plain, [[0xe1, Buffer.from(orientationExif(orientation))]]);
      const metadata = await sharp(tagged).metadata();
      expect(metadata.orientation, `orientation ${orientation}`).toBe(orientation);
      expect(metadata.autoOrient).toEqual(orientation >= 5 ? { width: 20, height: 40 } : { width: 40, height: 20 });
    }
  });

  /** The chunk types of a WebP, animation frames' chunks after their ANMF. */
  const webpChunkTypes = (webp: Uint8Array) => {
    const bytes = Buffer.from(webp);
    return [...webpChunks(bytes)].flatMap((chunk) =>
      chunk.type === 'ANMF' ? ['ANMF', ...[...webpChunks(bytes, chunk.payloadStart + 16, chunk.payloadEnd)].map(({ type }) => type)] : [chunk.type],
    );
  };
  /** Random RGBA pixels, a quarter of them fully transparent (with a colour all the same). */
  const translucentNoise = (width: number, height: number) => {
    const pixels = randomBytes(width * height * 4);
    for (let alpha = 3; alpha < pixels.length; alpha += 16) pixels[alpha] = 0;
    return sharp(pixels, { raw: { width, height, channels: 4 } });
  };
  /** What a viewer decodes, turned upright: `raw` at the image's own depth (8 or 16 bits a sample). */
  const uprightPixels = (image: Uint8Array, depth: 'uchar' | 'ushort' = 'uchar') => sharp(image).autoOrient().raw({ depth }).toBuffer();

  it('turns a lossless WebP upright losslessly: every pixel as sent, turned', async () => {
    const photo = await translucentNoise(64, 48).webp({ lossless: true, exact: true }).withExif(EXIF).withMetadata({ orientation: 6 }).toBuffer();
    expect(webpChunkTypes(photo)).toContain('VP8L');
    expect(isLosslessWebp(photo)).toBe(true);

    const { image, stored, metadata } = await storedImage(photo, 'lossless.webp');
    expect(image).toMatchObject({ width: 48, height: 64 });
    expect(metadata).toMatchObject({ format: 'webp', width: 48, height: 64, channels: 4 });
    expect({ orientation: metadata.orientation, exif: metadata.exif }).toEqual({});
    expect(webpChunkTypes(stored)).toContain('VP8L');
    expect(webpChunkTypes(stored)).not.toContain('VP8 ');
    // Even the colours under the transparent pixels, which a lossy or non-exact encoder changes.
    expect(await uprightPixels(stored)).toEqual(await uprightPixels(photo));
  });

  it('turns a lossy WebP upright as a lossy one', async () => {
    const photo = await noise(64, 48).webp({ quality: 80 }).withMetadata({ orientation: 6 }).toBuffer();
    expect(isLosslessWebp(photo)).toBe(false);
    const { stored, metadata } = await storedImage(photo, 'lossy.webp');
    expect(metadata).toMatchObject({ format: 'webp', width: 48, height: 64 });
    expect(webpChunkTypes(stored)).toContain('VP8 ');
    expect(webpChunkTypes(stored)).not.toContain('VP8L');
  });

  it('tells a lossless WebP by its chunks: a still image, or an animation whose every frame is VP8L', async () => {
    const frames = (encode: (image: Sharp) => Sharp) =>
      encode(sharp(randomBytes(32 * 64 * 3), { raw: { width: 32, height: 64, channels: 3, pageHeight: 32 } })).toBuffer();
    const lossless = await frames((image) => image.webp({ lossless: true }));
    const lossy = await frames((image) => image.webp({ quality: 80 }));
    expect(webpChunkTypes(lossless)).toEqual(['VP8X', 'ANIM', 'ANMF', 'VP8L', 'ANMF', 'VP8L']);
    expect(webpChunkTypes(lossy)).toEqual(['VP8X', 'ANIM', 'ANMF', 'VP8 ', 'ANMF', 'VP8 ']);
    expect([isLosslessWebp(lossless), isLosslessWebp(lossy)]).toEqual([true, false]);

    // A lossless first frame, then a lossy one: not lossless.
    const [, , , secondLossy] = [...webpChunks(lossy)];
    const mixed = Buffer.concat([lossless.subarray(0, [...webpChunks(lossless)][3]!.start), lossy.subarray(secondLossy!.start, secondLossy!.end)]);
    mixed.writeUInt32LE(mixed.byteLength - 8, 4);
    expect(webpChunkTypes(mixed)).toEqual(['VP8X', 'ANIM', 'ANMF', 'VP8L', 'ANMF', 'VP8 ']);
    expect(isLosslessWebp(mixed)).toBe(false);
    // Cut short, or not a WebP at all: nothing to tell it by.
    expect(isLosslessWebp(lossless.subarray(0, lossless.byteLength - 10))).toBe(false);
    expect(isLosslessWebp(await png(10, 10))).toBe(false);
  });

  it('turns a palette PNG upright as a palette of the same bit depth, every pixel as sent', async () => {
    const photo = await translucentNoise(64, 48).png({ palette: true, colours: 16 }).withMetadata({ orientation: 6 }).toBuffer();
    expect(await sharp(photo).metadata()).toMatchObject({ isPalette: true, bitsPerSample: 4, hasAlpha: true, orientation: 6 });
    const { stored, metadata } = await storedImage(photo, 'palette.png');
    expect(metadata).toMatchObject({ format: 'png', width: 48, height: 64, isPalette: true, bitsPerSample: 4 });
    expect(metadata.orientation).toBeUndefined();
    expect(await uprightPixels(stored)).toEqual(await uprightPixels(photo));
  });

  it('turns a 16-bit PNG upright at 16 bits, every sample as sent', async () => {
    const raw = { width: 40, height: 30, channels: 3 as const, depth: 'ushort' };
    const photo = await sharp(randomBytes(40 * 30 * 3 * 2), { raw }).toColourspace('rgb16').png().withMetadata({ orientation: 6 }).toBuffer();
    expect(await sharp(photo).metadata()).toMatchObject({ depth: 'ushort', bitsPerSample: 16, orientation: 6 });
    const { stored, metadata } = await storedImage(photo, 'deep.png');
    expect(metadata).toMatchObject({ format: 'png', width: 30, height: 40, depth: 'ushort', bitsPerSample: 16 });
    expect(metadata.orientation).toBeUndefined();
    expect(await uprightPixels(stored, 'ushort')).toEqual(await uprightPixels(photo, 'ushort'));
  });

  it('stores a PNG without its text chunks or eXIf, and with its pixels and colour profile', async () => {
    const encoded = await noise(64, 48).png().withExif(EXIF).withIccProfile('p3').toBuffer();
    const photo = withPngChunk(encoded, 'tEXt', Buffer.from(`Comment\0${COMMENT}`, 'latin1'));
    const sent = await sharp(photo).metadata();
    expect(sent.comments).toEqual([{ keyword: 'Comment', text: COMMENT }]);
    expect(sent.exif?.includes(CAMERA)).toBe(true);

    const { stored, metadata } = await storedImage(photo, 'screenshot.png');
    expect(metadata).toMatchObject({ format: 'png', width: 64, height: 48 });
    expect({ exif: metadata.exif, xmp: metadata.xmp, comments: metadata.comments }).toEqual({});
    for (const text of ['tEXt', 'eXIf', COMMENT, CAMERA]) expect(contains(stored, text), text).toBe(false);
    expect(metadata.icc).toEqual(sent.icc);
    expect(await pixelsOf(stored)).toEqual(await pixelsOf(photo));
  });

  it.each([
    ['WebP', 'webp', () => noise(64, 48).webp().withExif(EXIF).withXmp(XMP).toBuffer()],
    ['GIF', 'gif', async () => withGifMetadata(await noise(64, 48).gif().toBuffer(), COMMENT, XMP)],
    ['AVIF', 'heif', () => noise(64, 48).avif().withExif(EXIF).withXmp(XMP).toBuffer()],
  ])('stores a %s without its metadata', async (_format, format, make) => {
    const photo = await make();
    expect(contains(photo, CAMERA) || contains(photo, COMMENT)).toBe(true);
    const { stored, metadata } = await storedImage(photo, 'image');
    expect(metadata).toMatchObject({ format, width: 64, height: 48 });
    expect({ exif: metadata.exif, xmp: metadata.xmp }).toEqual({});
    for (const text of [CAMERA, COMMENT, 'Alice at home']) expect(contains(stored, text), text).toBe(false);
  });
});

/** A FileStorage in a Map: the encryption layer must work on any backend. */
function memoryStorage() {
  const objects = new Map<string, Buffer>();
  const storage: FileStorage = {
    async put(key, bytes) {
      const parts: Uint8Array[] = [];
      for await (const part of bytes) parts.push(part);
      objects.set(key, Buffer.concat(parts));
      return { size: objects.get(key)!.byteLength };
    },
    async get(key, range) {
      const object = objects.get(key)!;
      return (async function* () {
        yield range ? object.subarray(range.start, range.end + 1) : object;
      })();
    },
    async delete(key) {
      objects.delete(key);
    },
    async stat(key) {
      return objects.has(key) ? { size: objects.get(key)!.byteLength } : null;
    },
  };
  return { objects, storage };
}

describe('storage', () => {
  it('keeps files encrypted at rest in the chunked format', async () => {
    const marker = 'KOCMOC-PLAINTEXT-MARKER-';
    const plaintext = Buffer.from(marker.repeat(10_000));
    const file = await uploaded(alice, plaintext, { name: 'marker.txt' });
    const stored = readFileSync(storedPath(file.id));
    expect(stored.subarray(0, 4)).toEqual(Buffer.from([0x4b, 0x43, 0x46, 0x01]));
    expect(stored.byteLength).toBe(encryptedSize(plaintext.byteLength));
    expect(stored.includes(Buffer.from(marker))).toBe(false);
    expect(stored.includes(Buffer.from(marker.slice(0, 12)))).toBe(false);
    expect(Buffer.from(await bytesOf(await download(`/files/${file.id}`, alice.accessToken)))).toEqual(plaintext);
  });

  it('refuses to serve a file whose stored bytes were altered', async () => {
    const file = await uploaded(alice, randomBytes(2 * FILE_CHUNK_BYTES));
    const path = storedPath(file.id);
    const stored = readFileSync(path);
    stored[HEADER_BYTES + FILE_CHUNK_BYTES + 20]! ^= 0x01; // inside the second chunk
    writeFileSync(path, stored);
    const intact = await download(`/files/${file.id}`, alice.accessToken, { range: 'bytes=0-99' });
    expect(intact.status).toBe(206);
    await intact.arrayBuffer();
    const whole = await download(`/files/${file.id}`, alice.accessToken);
    await expect(whole.arrayBuffer()).rejects.toThrow();
  });

  it('seals a file arriving in pieces of any size, and holds the writer to the announced size', async () => {
    const { objects, storage } = memoryStorage();
    const keyring = app.services.config.messageEncryption;
    const plaintext = randomBytes(2 * FILE_CHUNK_BYTES + 100);
    const pieces = [1, 70_000, 200_000, plaintext.byteLength].map((end, i, ends) => plaintext.subarray(i === 0 ? 0 : ends[i - 1], end));
    const { keyId } = await writeEncryptedFile(storage, keyring, 'pieces', pieces, plaintext.byteLength);
    expect(objects.get('pieces')!.byteLength).toBe(encryptedSize(plaintext.byteLength));
    const read = async (storageKey: string, size: number, range?: { start: number; end: number }) => {
      const parts: Uint8Array[] = [];
      for await (const part of await readEncryptedFile(storage, keyring, { storageKey, keyId, size }, range)) parts.push(part);
      return Buffer.concat(parts);
    };
    expect(await read('pieces', plaintext.byteLength)).toEqual(plaintext);
    expect(await read('pieces', plaintext.byteLength, { start: FILE_CHUNK_BYTES - 1, end: FILE_CHUNK_BYTES })).toEqual(plaintext.subarray(FILE_CHUNK_BYTES - 1, FILE_CHUNK_BYTES + 1));

    await expect(writeEncryptedFile(storage, keyring, 'short', [plaintext], plaintext.byteLength + 1)).rejects.toThrow(/fewer than/);
    await expect(writeEncryptedFile(storage, keyring, 'long', [plaintext], plaintext.byteLength - 1)).rejects.toThrow(/more than/);

    await writeEncryptedFile(storage, keyring, 'empty', [], 0);
    expect(objects.get('empty')!.byteLength).toBe(HEADER_BYTES + 16);
    expect(await read('empty', 0)).toEqual(Buffer.alloc(0));
  });

  it('detects reordered and truncated chunks, whatever the backend', async () => {
    const { objects, storage: memory } = memoryStorage();
    const keyring = app.services.config.messageEncryption;
    const plaintext = randomBytes(3 * FILE_CHUNK_BYTES);
    const { keyId } = await writeEncryptedFile(memory, keyring, 'f1', [plaintext], plaintext.byteLength);
    const read = async (storageKey = 'f1', size = plaintext.byteLength) => {
      const parts: Uint8Array[] = [];
      for await (const part of await readEncryptedFile(memory, keyring, { storageKey, keyId, size })) parts.push(part);
      return Buffer.concat(parts);
    };
    expect(await read()).toEqual(plaintext);

    const original = objects.get('f1')!;
    const sealed = FILE_CHUNK_BYTES + 16;
    const chunk = (index: number) => original.subarray(HEADER_BYTES + index * sealed, HEADER_BYTES + (index + 1) * sealed);
    objects.set('f1', Buffer.concat([original.subarray(0, HEADER_BYTES), chunk(1), chunk(0), chunk(2)]));
    await expect(read()).rejects.toThrow(/chunk 0 failed authentication/);
    // Dropping the last chunk and claiming the shorter size: chunk 1 was not sealed as the final one.
    objects.set('f1', original.subarray(0, HEADER_BYTES + 2 * sealed));
    await expect(read('f1', 2 * FILE_CHUNK_BYTES)).rejects.toThrow(/chunk 1 failed authentication/);
    // The same bytes under another key (another file) do not open either.
    objects.set('f2', original);
    await expect(read('f2')).rejects.toThrow(/failed authentication/);
  });
});

describe('deleteUnusedUploads', () => {
  it('deletes old unused uploads (rows and stored bytes) and keeps used and recent ones', async () => {
    const unused = await uploaded(alice, await png(30, 30), { kind: 'IMAGE' });
    const used = await uploaded(alice, randomBytes(100));
    const unsent = await uploaded(alice, randomBytes(100));
    const recent = await uploaded(alice, randomBytes(100));
    await send(alice, 'FILE', used.id);
    const deletedMessage = await send(alice, 'FILE', unsent.id);
    await gql(app, DELETE_MESSAGE, { id: deletedMessage.id }, { token: alice.accessToken });
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await app.services.prisma.attachment.updateMany({ where: { id: { in: [unused.id, used.id, unsent.id] } }, data: { createdAt: twoDaysAgo } });
    const unusedRow = await app.services.prisma.attachment.findUniqueOrThrow({ where: { id: unused.id } });
    expect(await app.services.storage.stat(unusedRow.thumbnailKey!)).not.toBeNull();

    const deleted = await deleteUnusedUploads(app.services, new Date(Date.now() - app.services.config.files.unusedRetentionMs));
    expect(deleted).toBeGreaterThanOrEqual(2);

    const remaining = await app.services.prisma.attachment.findMany({ where: { id: { in: [unused.id, used.id, unsent.id, recent.id] } } });
    expect(remaining.map((row) => row.id).sort()).toEqual([used.id, recent.id].sort());
    expect(await app.services.storage.stat(unused.id)).toBeNull();
    expect(await app.services.storage.stat(unusedRow.thumbnailKey!)).toBeNull();
    expect(await app.services.storage.stat(unsent.id)).toBeNull();
    expect(await app.services.storage.stat(used.id)).not.toBeNull();
    expect((await download(`/files/${used.id}`, bob.accessToken)).status).toBe(200);
    expect((await download(`/files/${unused.id}`, alice.accessToken)).status).toBe(404);
  });
});

// Every file a download, upload or storage call opens is closed when it is done with it, however it
// ends, not left to the garbage collector: under load, such leaks run the process out of descriptors.
describe.runIf(existsSync('/proc/self/fd'))('file descriptors', () => {
  /** Files this process holds open (Linux: /proc/self/fd) stored under one of `keys`, or being written. */
  function openFiles(keys: string[]): string[] {
    const paths: string[] = [];
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        const path = readlinkSync(`/proc/self/fd/${fd}`);
        const ours = keys.includes(path.split('/').pop()!) || path.startsWith(join(uploadDir, '.incomplete'));
        if (path.startsWith(uploadDir) && ours) paths.push(path);
      } catch {
        // The descriptor readdir used, closed by now.
      }
    }
    return paths;
  }

  /**
   * A handle closes a turn or two after its stream ends or is destroyed: waits that long at most,
   * then asserts. A leaked handle the garbage collector closed meanwhile is caught by its warning.
   */
  async function expectClosed(keys: string[]) {
    for (const deadline = Date.now() + 2_000; openFiles(keys).length > 0 && Date.now() < deadline; ) await sleep(10);
    expect(openFiles(keys)).toEqual([]);
    expect(handlesClosedByGc()).toEqual([]);
  }

  /** An unsent FILE of `size` random bytes, stored directly (uploads stop at MAX_UPLOAD_BYTES). */
  async function storedFile(size: number) {
    const { storage, config, prisma } = app.services;
    const id = randomUUID();
    const { keyId } = await writeEncryptedFile(storage, config.messageEncryption, id, [randomBytes(size)], size);
    await prisma.attachment.create({ data: { id, uploaderId: alice.id, name: 'big.bin', mimeType: 'application/octet-stream', size, storageKey: id, contentKeyId: keyId } });
    return id;
  }

  const inProcess = (path: string, headers: Record<string, string> = {}) =>
    app.yoga.fetch(`http://kocmoc.test${pathOf(path)}`, { headers: { authorization: `Bearer ${alice.accessToken}`, ...headers } });

  it('closes the file of every download: whole, ranged, revalidated, HEAD, out of range, thumbnail', async () => {
    const file = await uploaded(alice, randomBytes(3 * FILE_CHUNK_BYTES), { kind: 'FILE' });
    const image = await uploaded(alice, await png(64, 64), { kind: 'IMAGE' });
    const get = async (path: string, headers: Record<string, string> = {}, method = 'GET') => {
      const response = await fetch(`${base}${pathOf(path)}`, { method, headers: { authorization: `Bearer ${alice.accessToken}`, ...headers } });
      return { status: response.status, bytes: (await response.arrayBuffer()).byteLength };
    };
    const results = await Promise.all(
      Array.from({ length: 10 }, () => [
        get(`/files/${file.id}`),
        get(`/files/${file.id}`, { range: 'bytes=70000-140000' }),
        get(`/files/${file.id}`, { range: `bytes=${10 * FILE_CHUNK_BYTES}-` }),
        get(`/files/${file.id}`, { 'if-none-match': `"${file.id}"` }),
        get(`/files/${file.id}`, {}, 'HEAD'),
        get(`/files/${image.id}/thumbnail`),
      ]).flat(),
    );
    expect(new Set(results.map(({ status }) => status))).toEqual(new Set([200, 206, 416, 304]));
    await expectClosed([file.id, `${image.id}.thumb`]);
  });

  it('closes the file when the client goes away mid-download', async () => {
    const id = await storedFile(8 * 1024 * 1024);
    const aborts = Array.from({ length: 8 }, () => new AbortController());
    const readers = await Promise.all(
      aborts.map(async ({ signal }) => {
        const response = await fetch(`${base}/files/${id}`, { headers: { authorization: `Bearer ${alice.accessToken}` }, signal });
        const reader = response.body!.getReader();
        expect((await reader.read()).done).toBe(false);
        return reader;
      }),
    );
    // 8 MiB do not fit in the socket buffers: the server is still reading each file.
    expect(openFiles([id]).length).toBeGreaterThan(0);
    for (const abort of aborts) abort.abort();
    await Promise.all(readers.map((reader) => reader.closed.catch(() => {})));
    await expectClosed([id]);
  });

  it('closes the file of a response nobody reads, and of one whose reader cancels it', async () => {
    const id = await storedFile(4 * FILE_CHUNK_BYTES);
    // Dropped unread: what a client that went away before the headers leaves behind, too.
    for (let i = 0; i < 10; i++) expect((await inProcess(`/files/${id}`)).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await inProcess(`/files/${id}`, { range: 'bytes=1000-' })).status).toBe(206);
    for (let i = 0; i < 10; i++) {
      const reader = (await inProcess(`/files/${id}`)).body!.getReader();
      expect((await reader.read()).done).toBe(false);
      await reader.cancel();
      await (await inProcess(`/files/${id}`)).body!.cancel();
    }
    await expectClosed([id]);
  });

  it('closes the file when the client goes away before the response starts', async () => {
    const id = await storedFile(4 * FILE_CHUNK_BYTES);
    const { port } = new URL(base);
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const socket = connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        socket.write(`GET /files/${id} HTTP/1.1\r\nHost: kocmoc.test\r\nAuthorization: Bearer ${alice.accessToken}\r\n\r\n`);
        // Gone while the server checks access: it answers a closed response, whose body nobody reads.
        socket.destroy();
      }),
    );
    // The server is done with those requests once it has answered ones it got after them.
    for (let i = 0; i < 3; i++) expect((await download(`/files/${id}`, alice.accessToken)).status).toBe(200);
    await sleep(100);
    await expectClosed([id]);
  });

  it('closes the file of a download that fails: tampered, truncated, or not decryptable', async () => {
    const tampered = await storedFile(3 * FILE_CHUNK_BYTES);
    const truncated = await storedFile(3 * FILE_CHUNK_BYTES);
    const path = storedPath(tampered);
    const stored = readFileSync(path);
    stored[HEADER_BYTES + FILE_CHUNK_BYTES + 20]! ^= 0x01;
    writeFileSync(path, stored);
    writeFileSync(storedPath(truncated), readFileSync(storedPath(truncated)).subarray(0, HEADER_BYTES + FILE_CHUNK_BYTES + 16 + 100));
    for (let i = 0; i < 5; i++) {
      for (const id of [tampered, truncated]) {
        await expect((await download(`/files/${id}`, alice.accessToken)).arrayBuffer()).rejects.toThrow();
        await expect((await inProcess(`/files/${id}`)).arrayBuffer()).rejects.toThrow();
      }
    }
    // A key id the keyring does not have: refused after the header is read, before the body.
    await app.services.prisma.attachment.update({ where: { id: truncated }, data: { contentKeyId: 'gone' } });
    expect((await download(`/files/${truncated}`, alice.accessToken)).status).toBe(500);
    await expectClosed([tampered, truncated]);
  });

  it('closes the file when storage cannot read or write it', async () => {
    const { storage, config } = app.services;
    const id = await storedFile(1_000);
    await expect(storage.get(id, { start: 500, end: 100 })).rejects.toThrow(RangeError);
    await expect(writeEncryptedFile(storage, config.messageEncryption, `${id}-short`, [randomBytes(10)], 11)).rejects.toThrow(/fewer than/);
    expect(await storage.stat(`${id}-short`)).toBeNull();
    await expectClosed([id]);
  });
});

describe('file handles', () => {
  it('are never left to the garbage collector, in any test of this file', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    // The warning is emitted on a later turn.
    await sleep(50);
    expect(handlesClosedByGc()).toEqual([]);
  });
});
