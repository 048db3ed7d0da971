// Encrypts content at rest (message text, edit history, location; later attachments) with
// AES-256-GCM. Always batch-shaped, so a page of messages is one call: small batches run inline on
// the main thread, big ones as pool tasks, as measured in bench/RESULTS.md ("Message encryption").
import type { Keyring } from '../env.ts';
import type { WorkerPool } from '../cpu/pool.ts';
import { openBatch, sealBatch, type OpenItem, type SealItem } from '../../workers/crypto.ts';

/**
 * Fixed cost of one item (cipher setup, AAD, allocation: ~6-10 µs inline in the bench) expressed as
 * the bytes AES-GCM gets through in that time (~1.2 GB/s inline), so a batch's cost is one number.
 */
export const ITEM_COST_BYTES = 8 * 1024;

/**
 * A batch whose cost (payload bytes + ITEM_COST_BYTES per item) is at most this runs inline, at most
 * ~2 ms of main-thread work; bigger ones go to the pool. From bench/RESULTS.md ("Message encryption"):
 * - a page of 50 small messages opens in ~0.2-0.3 ms inline and ~0.4 ms as one pool task, but
 *   ~13 ms as one pool task while logins keep the shared pool busy with argon2 (inline: ~0.2 ms);
 * - one pool task per item is 6-14x slower than inline for 100 B and 4 KiB items: never worth it;
 * - 1 MiB items take ~0.9 ms each inline; in the pool, throughput is the same while the main
 *   thread spends ~0.4-0.5x the CPU and its event-loop p99 is lower.
 * 2 MiB rather than 1: a page of 50 messages at the worst-case size (4000 characters, up to ~24 KB
 * of JSON each: ~1.6 MiB with the item cost) still runs inline, so reading messages never queues
 * behind password hashing; multi-MiB attachments and bulk batches go to the pool.
 */
export const INLINE_MAX_BATCH_BYTES = 2 * 1024 * 1024;

/**
 * Pool batches are split into tasks of at most this many payload bytes (or one item), so several
 * threads share a big batch and no single message between threads gets huge; the bench's batched
 * 1 MiB runs use 4 MiB tasks.
 */
export const POOL_TASK_MAX_BYTES = 4 * 1024 * 1024;

export interface ContentCipherOptions {
  /** Keys by id; new content is sealed under `currentKeyId`, any listed key opens. */
  keyring: Keyring;
  /** Runs the batches that are too big to run inline. */
  pool: WorkerPool;
  /**
   * Batches costing at most this many bytes (payload + ITEM_COST_BYTES per item) run on the main
   * thread. Default INLINE_MAX_BATCH_BYTES; 0 sends every batch to the pool, Infinity keeps all inline.
   */
  inlineMaxBytes?: number;
  /** Largest payload of one pool task; bigger batches become several tasks. Default POOL_TASK_MAX_BYTES. */
  poolTaskMaxBytes?: number;
}

export interface SealedContent {
  /** Store beside the ciphertext: the key it was sealed under. */
  keyId: string;
  /** `iv || tag || ciphertext`. */
  ciphertext: Uint8Array;
}

export interface ContentCipher {
  /** Seals under the current key, in order; `aad` (e.g. the row id) must be given again to open. */
  seal(items: SealItem[]): Promise<SealedContent[]>;
  /** Opens in order; rejects if any item has an unknown key id or fails authentication. */
  open(items: OpenItem[]): Promise<Uint8Array[]>;
}

export function createContentCipher({
  keyring,
  pool,
  inlineMaxBytes = INLINE_MAX_BATCH_BYTES,
  poolTaskMaxBytes = POOL_TASK_MAX_BYTES,
}: ContentCipherOptions): ContentCipher {
  // Compact copies: keys parsed from base64 are views into Node's shared 8 KiB Buffer pool, and
  // structured clone would copy (and hand the worker) that whole slab with every task.
  const keys = Object.fromEntries(Object.entries(keyring.keys).map(([id, key]) => [id, new Uint8Array(key)]));
  const currentKey = keys[keyring.currentKeyId];
  if (!currentKey) throw new Error(`content cipher: the current key id "${keyring.currentKeyId}" is not in the keyring`);
  const keyId = keyring.currentKeyId;

  const runsInline = (items: ReadonlyArray<{ bytes: number }>) =>
    items.reduce((sum, item) => sum + item.bytes + ITEM_COST_BYTES, 0) <= inlineMaxBytes;

  return {
    async seal(items) {
      if (items.length === 0) return [];
      const sized = items.map((item) => ({ item, bytes: item.plaintext.byteLength }));
      const ciphertexts = runsInline(sized)
        ? sealBatch({ key: currentKey, items })
        : await inTasks(sized, poolTaskMaxBytes, (chunk) => pool.run('sealBatch', { key: currentKey, items: chunk }));
      return ciphertexts.map((ciphertext) => ({ keyId, ciphertext }));
    },
    async open(items) {
      if (items.length === 0) return [];
      const sized = items.map((item) => ({ item, bytes: item.ciphertext.byteLength }));
      return runsInline(sized)
        ? openBatch({ keys, items })
        : inTasks(sized, poolTaskMaxBytes, (chunk) => pool.run('openBatch', { keys, items: chunk }));
    },
  };
}

/** Consecutive chunks of at most `maxBytes` (at least one item each), run at once, results in order. */
async function inTasks<Item, Result>(
  sized: ReadonlyArray<{ item: Item; bytes: number }>,
  maxBytes: number,
  run: (chunk: Item[]) => Promise<Result[]>,
): Promise<Result[]> {
  const chunks: Item[][] = [];
  let current: Item[] = [];
  let currentBytes = 0;
  for (const { item, bytes } of sized) {
    if (current.length > 0 && currentBytes + bytes > maxBytes) {
      chunks.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(item);
    currentBytes += bytes;
  }
  chunks.push(current);
  return (await Promise.all(chunks.map(run))).flat();
}
