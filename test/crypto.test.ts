// Content encryption at rest: real AES-256-GCM, inline and through a real worker pool.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { createContentCipher, type ContentCipher } from '../src/crypto/content-cipher.ts';
import { keyIdOf, keyringOf } from '../src/env.ts';
import { createWorkerPool, type WorkerPool } from '../src/cpu/pool.ts';
import { openBatch, sealBatch } from '../workers/crypto.ts';

const text = (value: string) => new TextEncoder().encode(value);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A copy with one byte flipped at `index` (negative: from the end). */
function flipped(bytes: Uint8Array, index: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[index < 0 ? copy.length + index : index]! ^= 0x01;
  return copy;
}

// Created at load time (not in beforeAll): the ciphers below are built while the suites are collected.
const pool: WorkerPool = createWorkerPool({ threads: 2 });
const keyring = keyringOf(randomBytes(32));

afterAll(async () => {
  await pool.close();
});

// Every behaviour holds wherever the batch runs: the thresholds only pick the place.
const placements: Array<[string, () => ContentCipher]> = [
  ['inline', () => createContentCipher({ keyring, pool, inlineMaxBytes: Number.POSITIVE_INFINITY })],
  ['in the pool', () => createContentCipher({ keyring, pool, inlineMaxBytes: 0 })],
  ['by the default threshold', () => createContentCipher({ keyring, pool })],
];

describe.each(placements)('content cipher, %s', (_placement, makeCipher) => {
  const cipher = makeCipher();

  it('round-trips text under the current key id', async () => {
    const sealed = await cipher.seal([{ aad: 'message-1', plaintext: text('привет, мир 🚀') }]);
    expect(sealed).toHaveLength(1);
    expect(sealed[0]!.keyId).toBe(keyring.currentKeyId);
    // iv (12) + tag (16) + ciphertext of the same length as the plaintext
    expect(sealed[0]!.ciphertext.length).toBe(12 + 16 + text('привет, мир 🚀').length);
    const [opened] = await cipher.open([{ keyId: sealed[0]!.keyId, aad: 'message-1', ciphertext: sealed[0]!.ciphertext }]);
    expect(decode(opened!)).toBe('привет, мир 🚀');
  });

  it('seals and opens a batch of many items in one call, in order', async () => {
    const plaintexts = Array.from({ length: 200 }, (_, index) => text(`message ${index} ${'x'.repeat(index * 7)}`));
    const sealed = await cipher.seal(plaintexts.map((plaintext, index) => ({ aad: `m-${index}`, plaintext })));
    expect(sealed).toHaveLength(200);
    const opened = await cipher.open(sealed.map(({ keyId, ciphertext }, index) => ({ keyId, aad: `m-${index}`, ciphertext })));
    expect(opened.map(decode)).toEqual(plaintexts.map(decode));
  });

  it('opens large payloads split over several pool tasks, in order', async () => {
    const plaintexts = Array.from({ length: 6 }, () => new Uint8Array(randomBytes(1024 * 1024)));
    const sealed = await cipher.seal(plaintexts.map((plaintext, index) => ({ aad: `file-${index}`, plaintext })));
    const opened = await cipher.open(sealed.map(({ keyId, ciphertext }, index) => ({ keyId, aad: `file-${index}`, ciphertext })));
    opened.forEach((bytes, index) => expect(Buffer.from(bytes).equals(plaintexts[index]!)).toBe(true));
  });

  it('rejects a ciphertext with any byte flipped: iv, tag or body', async () => {
    const [sealed] = await cipher.seal([{ aad: 'message-2', plaintext: text('do not touch') }]);
    for (const index of [0, 12, 28, -1]) {
      await expect(
        cipher.open([{ keyId: sealed!.keyId, aad: 'message-2', ciphertext: flipped(sealed!.ciphertext, index) }]),
      ).rejects.toThrow(/item 0 failed authentication/);
    }
  });

  it('rejects the right ciphertext under the wrong AAD (moved to another row)', async () => {
    const [sealed] = await cipher.seal([{ aad: 'message-3', plaintext: text('stay in your row') }]);
    await expect(cipher.open([{ keyId: sealed!.keyId, aad: 'message-4', ciphertext: sealed!.ciphertext }])).rejects.toThrow(
      /failed authentication .*wrong AAD/,
    );
  });

  it('rejects an unknown key id with a message that names it', async () => {
    const [sealed] = await cipher.seal([{ aad: 'message-5', plaintext: text('lost key') }]);
    await expect(cipher.open([{ keyId: 'feedfacecafe', aad: 'message-5', ciphertext: sealed!.ciphertext }])).rejects.toThrow(
      /key id "feedfacecafe", which is not configured/,
    );
  });

  it('seals the same plaintext twice to different ciphertexts (random IV)', async () => {
    const [first, second] = await cipher.seal([
      { aad: 'message-6', plaintext: text('same words') },
      { aad: 'message-6', plaintext: text('same words') },
    ]);
    expect(Buffer.from(first!.ciphertext).equals(Buffer.from(second!.ciphertext))).toBe(false);
    expect(Buffer.from(first!.ciphertext.subarray(0, 12)).equals(Buffer.from(second!.ciphertext.subarray(0, 12)))).toBe(false);
  });

  it('returns [] for empty batches without touching the pool', async () => {
    expect(await cipher.seal([])).toEqual([]);
    expect(await cipher.open([])).toEqual([]);
  });
});

describe('key rotation', () => {
  it('opens content sealed under an old key and seals new content under the current one', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = createContentCipher({ keyring: keyringOf(oldKey), pool });
    const [old] = await before.seal([{ aad: 'message-7', plaintext: text('from last year') }]);
    expect(old!.keyId).toBe(keyIdOf(oldKey));

    for (const inlineMaxBytes of [Number.POSITIVE_INFINITY, 0]) {
      const after = createContentCipher({ keyring: keyringOf(newKey, oldKey), pool, inlineMaxBytes });
      const [fresh] = await after.seal([{ aad: 'message-8', plaintext: text('from today') }]);
      expect(fresh!.keyId).toBe(keyIdOf(newKey));
      const opened = await after.open([
        { keyId: old!.keyId, aad: 'message-7', ciphertext: old!.ciphertext },
        { keyId: fresh!.keyId, aad: 'message-8', ciphertext: fresh!.ciphertext },
      ]);
      expect(opened.map(decode)).toEqual(['from last year', 'from today']);
    }
  });

  it('fails authentication when a ciphertext is opened under another key claiming its id', () => {
    const key = new Uint8Array(randomBytes(32));
    const [ciphertext] = sealBatch({ key, items: [{ aad: 'a', plaintext: text('secret') }] });
    expect(() => openBatch({ keys: { k: new Uint8Array(randomBytes(32)) }, items: [{ keyId: 'k', aad: 'a', ciphertext: ciphertext! }] })).toThrow(
      /failed authentication under key id "k"/,
    );
  });

  it('refuses a keyring whose current key is missing', () => {
    expect(() => createContentCipher({ keyring: { currentKeyId: 'nope', keys: {} }, pool })).toThrow(/current key id "nope"/);
  });
});

describe('worker tasks', () => {
  it('refuse keys that are not 32 bytes, and truncated ciphertexts', () => {
    expect(() => sealBatch({ key: new Uint8Array(16), items: [] })).toThrow(/32 bytes/);
    expect(() => openBatch({ keys: { k: new Uint8Array(32) }, items: [{ keyId: 'k', aad: 'a', ciphertext: new Uint8Array(10) }] })).toThrow(
      /shorter than the 28-byte iv and tag/,
    );
  });

  it('do not resolve a key id through the prototype chain', () => {
    expect(() => openBatch({ keys: {}, items: [{ keyId: 'constructor', aad: 'a', ciphertext: new Uint8Array(40) }] })).toThrow(
      /not configured/,
    );
  });

  it('move large results out of the pool and copy small ones, both intact', async () => {
    const key = new Uint8Array(randomBytes(32));
    const plaintexts = [new Uint8Array(randomBytes(100)), new Uint8Array(randomBytes(256 * 1024))];
    const sealed = await pool.run('sealBatch', { key, items: plaintexts.map((plaintext, index) => ({ aad: `${index}`, plaintext })) });
    const opened = await pool.run('openBatch', {
      keys: { k: key },
      items: sealed.map((ciphertext, index) => ({ keyId: 'k', aad: `${index}`, ciphertext })),
    });
    opened.forEach((bytes, index) => expect(Buffer.from(bytes).equals(plaintexts[index]!)).toBe(true));
  });
});
