// Reads and writes files through FileStorage in the chunked format of file-cipher.ts, under the
// message keyring (MESSAGE_ENCRYPTION_KEY and its old keys), so rotation works as for messages.
import type { Keyring } from '../env.ts';
import {
  chunkCount,
  chunkOffset,
  deriveFileKey,
  HEADER_BYTES,
  openChunk,
  parseFileHeader,
  plaintextSize,
  sealFile,
  TAG_BYTES,
} from './file-cipher.ts';
import type { ByteRange, FileStorage } from './storage.ts';

export interface EncryptedFile {
  storageKey: string;
  /** Keyring id of the master key it was sealed under. */
  keyId: string;
  /** Plaintext bytes. */
  size: number;
}

/**
 * Seals a plaintext of `size` bytes, arriving as `pieces`, under the keyring's current key and
 * stores it; returns the key id to keep beside it.
 */
export async function writeEncryptedFile(
  storage: FileStorage,
  keyring: Keyring,
  storageKey: string,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
): Promise<{ keyId: string }> {
  const keyId = keyring.currentKeyId;
  await storage.put(storageKey, sealFile(masterKey(keyring, keyId), storageKey, pieces, size));
  return { keyId };
}

/**
 * The plaintext of a stored file, or of `range` of it (inclusive, within `file.size`), opening only
 * the chunks the range touches. The stream fails if any chunk does not authenticate.
 *
 * The stored bytes are opened when the first chunk is read, not before: a stream that is dropped or
 * cancelled unread (the client left before the response started) holds no file, since a generator
 * that never started runs no clean-up. Once reading, ending early (return, a failed chunk) closes it.
 */
export async function readEncryptedFile(
  storage: FileStorage,
  keyring: Keyring,
  file: EncryptedFile,
  range: ByteRange = { start: 0, end: file.size - 1 },
): Promise<AsyncIterable<Uint8Array>> {
  const header = parseFileHeader(await readAll(await storage.get(file.storageKey, { start: 0, end: HEADER_BYTES - 1 })));
  const key = deriveFileKey(masterKey(keyring, file.keyId), header);
  const { chunkBytes } = header;
  const lastIndex = chunkCount(file.size, chunkBytes) - 1;
  if (file.size === 0 || range.end < range.start) return (async function* () {})();

  const first = Math.floor(range.start / chunkBytes);
  const last = Math.floor(range.end / chunkBytes);
  const sealedLength = (index: number) => Math.min(chunkBytes, file.size - index * chunkBytes) + TAG_BYTES;

  return (async function* () {
    const sealed = await storage.get(file.storageKey, {
      start: chunkOffset(first, chunkBytes),
      end: chunkOffset(last, chunkBytes) + sealedLength(last) - 1,
    });
    // Read pieces do not line up with sealed chunks; carry what is left over to the next piece.
    let buffered: Uint8Array = new Uint8Array(0);
    let index = first;
    for await (const piece of sealed) {
      buffered = buffered.byteLength === 0 ? piece : Buffer.concat([buffered, piece]);
      while (index <= last && buffered.byteLength >= sealedLength(index)) {
        const chunk = buffered.subarray(0, sealedLength(index));
        buffered = buffered.subarray(chunk.byteLength);
        const plaintext = openChunk({ key, header, storageKey: file.storageKey, index, final: index === lastIndex }, chunk);
        const from = index === first ? range.start - index * chunkBytes : 0;
        const to = index === last ? range.end - index * chunkBytes + 1 : plaintext.byteLength;
        yield plaintext.subarray(from, to);
        index++;
      }
    }
    if (index <= last) throw new Error(`encrypted file "${file.storageKey}": stored object ends before chunk ${index}`);
  })();
}

/** Plaintext size of a stored file from its header and stored size; null when there is no such object. */
export async function encryptedFileSize(storage: FileStorage, storageKey: string): Promise<number | null> {
  const stored = await storage.stat(storageKey);
  if (!stored) return null;
  const header = parseFileHeader(await readAll(await storage.get(storageKey, { start: 0, end: HEADER_BYTES - 1 })));
  return plaintextSize(stored.size, header.chunkBytes);
}

function masterKey(keyring: Keyring, keyId: string): Uint8Array {
  // `Object.hasOwn`, so an id like `__proto__` cannot pick up a non-key.
  const key = Object.hasOwn(keyring.keys, keyId) ? keyring.keys[keyId] : undefined;
  if (!key) throw new Error(`encrypted file: key id "${keyId}" is not configured; add it to MESSAGE_ENCRYPTION_OLD_KEYS`);
  return key;
}

async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for await (const piece of stream) pieces.push(piece);
  return Buffer.concat(pieces);
}
