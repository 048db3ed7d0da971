// Where uploaded bytes live. The rest of the files code sees only this interface, so another
// backend (an S3-compatible bucket, say) plugs in here; what it stores is already encrypted
// (src/files/encrypted-files.ts), so a backend never sees plaintext.

/** An inclusive byte range, as in HTTP: `{ start: 0, end: 99 }` is the first 100 bytes. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface FileStorage {
  /**
   * Stores the bytes under `key`, all or nothing: until the returned promise resolves the key
   * reads as missing, and a failed or interrupted write leaves no object behind.
   */
  put(key: string, bytes: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<{ size: number }>;
  /**
   * The object's bytes (only `range` when given). Rejects with `StoredObjectMissing` for an unknown key.
   * What it holds open (a file) is released when the iteration ends, fails or is returned from early,
   * so a caller must iterate what it gets: one never iterated keeps it until garbage collection.
   */
  get(key: string, range?: ByteRange): Promise<AsyncIterable<Uint8Array>>;
  /** Removes the object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** The object's size, or null when there is none. */
  stat(key: string): Promise<{ size: number } | null>;
  /**
   * Optional housekeeping for backends whose writes can leave debris when the process dies
   * mid-write (the local disk's temporary files); removes what is older than `olderThan`.
   */
  deleteIncomplete?(olderThan: Date): Promise<number>;
}

export class StoredObjectMissing extends Error {
  override name = 'StoredObjectMissing';
  constructor(readonly key: string) {
    super(`no stored object under key "${key}"`);
  }
}

/**
 * Keys are made by the files code (`<attachment id>`, `<attachment id>.thumb`); this shape keeps
 * them safe as file names and as object-store keys alike.
 */
export const STORAGE_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export function assertStorageKey(key: string): void {
  if (!STORAGE_KEY.test(key) || key.includes('..')) throw new Error(`invalid storage key "${key}"`);
}

/** A range `get` can read: whole non-negative offsets, start at most end. */
export function assertByteRange({ start, end }: ByteRange): void {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range ${start}-${end}`);
  }
}
