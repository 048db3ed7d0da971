// AES-256-GCM for content at rest. Pure functions of their input, so they run the same inline on the
// main thread or as worker-pool tasks; src/crypto/content-cipher.ts decides which (see bench/RESULTS.md).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
/** 96-bit IVs are GCM's native size; random ones are safe for far more messages than one key will see. */
const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = IV_BYTES + TAG_BYTES;
/**
 * Outputs at least this big are moved out of a worker, smaller ones copied: moving 1 MiB outputs
 * was ~1.4-1.8x faster than copying them, while for 4-16 KiB outputs moving was a wash or slower
 * (a fixed cost per transferred buffer); about even at 64 KiB. See "Message encryption" in bench/RESULTS.md.
 */
const MOVE_MIN_BYTES = 64 * 1024;

/**
 * Lists, on a result, the ArrayBuffers the task will not touch again, so workers/entry.mjs moves
 * (transfers) them to the main thread instead of copying them. A registry symbol, so the plain-JS
 * entry can spell it without importing this file; it is not enumerable, so inline callers and
 * structured clone never see it.
 */
export const TRANSFERABLE_RESULT = Symbol.for('kocmoc.worker.transferableResult');

export interface SealItem {
  /** Additional authenticated data, e.g. the row's id: the ciphertext only opens with the same value. */
  aad: string;
  plaintext: Uint8Array;
}

export interface SealBatchInput {
  /** The 32-byte key to seal under (the keyring's current key). */
  key: Uint8Array;
  items: SealItem[];
}

/** Each output is `iv (12) || tag (16) || ciphertext`, in the order of `items`. */
export function sealBatch({ key, items }: SealBatchInput): Uint8Array[] {
  assertKey(key, 'sealBatch');
  // One random draw for the whole batch: a CSPRNG call per item costs more than the cipher for small items.
  const ivs = randomBytes(IV_BYTES * items.length);
  const sealed = items.map(({ aad, plaintext }, index) => {
    const iv = ivs.subarray(index * IV_BYTES, (index + 1) * IV_BYTES);
    const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = cipher.update(plaintext);
    const tail = cipher.final(); // empty for GCM, kept for correctness
    // A fresh, exactly-sized buffer per output: safe to hand to Prisma as is and to transfer.
    const out = new Uint8Array(HEADER_BYTES + body.length + tail.length);
    out.set(iv, 0);
    out.set(cipher.getAuthTag(), IV_BYTES);
    out.set(body, HEADER_BYTES);
    out.set(tail, HEADER_BYTES + body.length);
    return out;
  });
  return markTransferable(sealed);
}

export interface OpenItem {
  /** Id of the key the ciphertext was sealed under (stored beside it). */
  keyId: string;
  /** The same additional authenticated data given to `sealBatch`. */
  aad: string;
  ciphertext: Uint8Array;
}

export interface OpenBatchInput {
  /** Every usable key by id; old keys stay here while their ciphertexts exist. */
  keys: Record<string, Uint8Array>;
  items: OpenItem[];
}

/**
 * Plaintexts in the order of `items`. Throws for an unknown key id, and when authentication fails
 * (tampered ciphertext, wrong AAD, wrong key): nothing of a batch is returned if any item fails.
 */
export function openBatch({ keys, items }: OpenBatchInput): Uint8Array[] {
  const opened = items.map(({ keyId, aad, ciphertext }, index) => {
    // `Object.hasOwn`, so a key id like `__proto__` or `toString` cannot pick up a non-key.
    const key = Object.hasOwn(keys, keyId) ? keys[keyId] : undefined;
    if (!key) {
      throw new Error(
        `openBatch: item ${index} was sealed under key id "${keyId}", which is not configured ` +
          `(known: ${Object.keys(keys).join(', ') || 'none'}); add it to MESSAGE_ENCRYPTION_OLD_KEYS`,
      );
    }
    assertKey(key, 'openBatch');
    if (ciphertext.length < HEADER_BYTES) {
      throw new Error(`openBatch: item ${index} is ${ciphertext.length} bytes, shorter than the ${HEADER_BYTES}-byte iv and tag`);
    }
    const decipher = createDecipheriv(ALGORITHM, key, ciphertext.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAuthTag(ciphertext.subarray(IV_BYTES, HEADER_BYTES));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    const body = decipher.update(ciphertext.subarray(HEADER_BYTES));
    let tail: Buffer;
    try {
      tail = decipher.final();
    } catch {
      // OpenSSL's "Unsupported state or unable to authenticate data" says neither which item nor why.
      throw new Error(
        `openBatch: item ${index} failed authentication under key id "${keyId}" ` +
          '(ciphertext tampered with, wrong AAD, or wrong key)',
      );
    }
    const out = new Uint8Array(body.length + tail.length);
    out.set(body, 0);
    out.set(tail, body.length);
    return out;
  });
  return markTransferable(opened);
}

function assertKey(key: Uint8Array, task: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new Error(`${task}: the key must be ${KEY_BYTES} bytes for AES-256-GCM, got ${key instanceof Uint8Array ? key.length : typeof key}`);
  }
}

/** Every output here owns its whole ArrayBuffer (allocated above), so moving one detaches nothing else. */
function markTransferable<T extends Uint8Array[]>(result: T): T {
  const movable = result.filter((bytes) => bytes.byteLength >= MOVE_MIN_BYTES).map((bytes) => bytes.buffer);
  Object.defineProperty(result, TRANSFERABLE_RESULT, { value: movable, enumerable: false });
  return result;
}
