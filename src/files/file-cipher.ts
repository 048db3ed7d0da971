// Files at rest: AES-256-GCM in fixed-size chunks, so a file is sealed and opened piece by piece
// (the event loop gets a turn every few chunks) and a Range read opens only the chunks it needs.
//
// Layout: header || chunk 0 || chunk 1 || ... where
//   header  = "KCF" 0x01 (format v1) || chunk size (u32 BE) || salt (16 random bytes)   24 bytes
//   chunk i = ciphertext of plaintext bytes [i*C, (i+1)*C) || GCM tag (16 bytes)
// An empty file is one empty chunk, so even it carries a tag.
//
// Keys: each file gets its own key, HKDF-SHA256(master key, salt, "kocmoc file v1"), so the nonce
// can simply be the chunk index without ever repeating under a key, however many files one master
// key seals. AAD = header || index (u32 BE) || final flag (1 byte) || storage key: chunks cannot be
// reordered, moved to another file, dropped from the end (the new last chunk fails as "final"), or
// extended past the end.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Plaintext bytes per chunk. 64 KiB: AES-GCM's per-chunk set-up is small next to it (~0.1 ms of work per chunk). */
export const FILE_CHUNK_BYTES = 64 * 1024;
export const TAG_BYTES = 16;
export const HEADER_BYTES = 24;
const MAGIC = [0x4b, 0x43, 0x46, 0x01]; // "KCF" + format version 1
const SALT_BYTES = 16;
/**
 * sealFile gives the event loop a turn after this many chunks (256 KiB, ~0.4 ms of sealing), whatever
 * its consumer does: a backend that buffers large parts before awaiting must not turn a 25 MiB upload
 * into one long block. A turn after every chunk cost ~40% of upload throughput under concurrency
 * (each chunk waited for a whole busy loop iteration) without a better event-loop p99.
 */
const CHUNKS_PER_TURN = 4;
const KEY_INFO = Buffer.from('kocmoc file v1', 'utf8');

export interface FileHeader {
  /** The header's exact bytes (they are part of every chunk's AAD). */
  bytes: Uint8Array;
  chunkBytes: number;
  salt: Uint8Array;
}

export function newFileHeader(chunkBytes = FILE_CHUNK_BYTES): FileHeader {
  const bytes = new Uint8Array(HEADER_BYTES);
  bytes.set(MAGIC, 0);
  new DataView(bytes.buffer).setUint32(4, chunkBytes);
  bytes.set(randomBytes(SALT_BYTES), 8);
  return { bytes, chunkBytes, salt: bytes.subarray(8) };
}

export function parseFileHeader(bytes: Uint8Array): FileHeader {
  if (bytes.byteLength < HEADER_BYTES || MAGIC.some((byte, index) => bytes[index] !== byte)) {
    throw new Error('encrypted file: unknown header (not a v1 file)');
  }
  // A copy: `bytes` may be a view into a larger (pooled) buffer.
  const header = new Uint8Array(bytes.subarray(0, HEADER_BYTES));
  const chunkBytes = new DataView(header.buffer).getUint32(4);
  if (chunkBytes === 0) throw new Error('encrypted file: chunk size 0 in header');
  return { bytes: header, chunkBytes, salt: header.subarray(8) };
}

/** The file's own key, from the master key (the keyring's) and the header's salt. */
export function deriveFileKey(masterKey: Uint8Array, header: FileHeader): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, header.salt, KEY_INFO, 32));
}

/** Chunks a plaintext of `size` bytes is sealed in (at least one). */
export const chunkCount = (size: number, chunkBytes: number) => Math.max(1, Math.ceil(size / chunkBytes));

/** Bytes on disk for a plaintext of `size` bytes. */
export const encryptedSize = (size: number, chunkBytes = FILE_CHUNK_BYTES) => HEADER_BYTES + size + chunkCount(size, chunkBytes) * TAG_BYTES;

/** Where sealed chunk `index` starts in the stored file. */
export const chunkOffset = (index: number, chunkBytes: number) => HEADER_BYTES + index * (chunkBytes + TAG_BYTES);

function nonce(index: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(index, 8);
  return iv;
}

function chunkAad(header: FileHeader, storageKey: string, index: number, final: boolean): Buffer {
  const position = Buffer.alloc(5);
  position.writeUInt32BE(index, 0);
  position[4] = final ? 1 : 0;
  return Buffer.concat([header.bytes, position, Buffer.from(storageKey, 'utf8')]);
}

export interface ChunkPosition {
  /** The file's key from `deriveFileKey`. */
  key: Uint8Array;
  header: FileHeader;
  storageKey: string;
  index: number;
  /** The file's last chunk. */
  final: boolean;
}

function startChunk({ key, header, storageKey, index, final }: ChunkPosition) {
  const cipher = createCipheriv('aes-256-gcm', key, nonce(index), { authTagLength: TAG_BYTES });
  cipher.setAAD(chunkAad(header, storageKey, index, final));
  return cipher;
}

/** The plaintext of one `ciphertext || tag`; throws when it was tampered with, moved or truncated. */
export function openChunk({ key, header, storageKey, index, final }: ChunkPosition, sealed: Uint8Array): Uint8Array {
  if (sealed.byteLength < TAG_BYTES) throw new Error(`encrypted file "${storageKey}": chunk ${index} is truncated`);
  const bodyBytes = sealed.byteLength - TAG_BYTES;
  const decipher = createDecipheriv('aes-256-gcm', key, nonce(index), { authTagLength: TAG_BYTES });
  decipher.setAAD(chunkAad(header, storageKey, index, final));
  decipher.setAuthTag(sealed.subarray(bodyBytes));
  const body = decipher.update(sealed.subarray(0, bodyBytes));
  try {
    decipher.final();
  } catch {
    throw new Error(`encrypted file "${storageKey}": chunk ${index} failed authentication (tampered, truncated or wrong key)`);
  }
  return body;
}

/**
 * The stored form of a plaintext of `size` bytes that arrives as `pieces` of any length: the
 * header, then every chunk's ciphertext and tag, sealed as the pieces arrive. A piece that spans
 * a chunk boundary is fed to both chunks' ciphers, so the plaintext is never copied or joined, and
 * the only new memory is the ciphertext itself (large uploads churn the garbage collector less).
 */
export async function* sealFile(
  masterKey: Uint8Array,
  storageKey: string,
  pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  size: number,
  chunkBytes = FILE_CHUNK_BYTES,
): AsyncGenerator<Uint8Array> {
  const header = newFileHeader(chunkBytes);
  const key = deriveFileKey(masterKey, header);
  yield header.bytes;
  const count = chunkCount(size, chunkBytes);
  const lengthOf = (index: number) => Math.min(chunkBytes, size - index * chunkBytes);
  let index = 0;
  let filled = 0;
  let cipher = startChunk({ key, header, storageKey, index, final: count === 1 });
  for await (const piece of pieces) {
    for (let offset = 0; offset < piece.byteLength; ) {
      if (index === count) throw new Error(`encrypted file "${storageKey}": more than the ${size} bytes announced`);
      const take = Math.min(piece.byteLength - offset, lengthOf(index) - filled);
      yield cipher.update(piece.subarray(offset, offset + take));
      offset += take;
      filled += take;
      if (filled === lengthOf(index)) {
        cipher.final();
        yield cipher.getAuthTag();
        index++;
        filled = 0;
        if (index < count) cipher = startChunk({ key, header, storageKey, index, final: index === count - 1 });
        if (index % CHUNKS_PER_TURN === 0) await nextTurn();
      }
    }
  }
  // An empty file is one empty chunk, sealed here since no piece closed it.
  if (size === 0) {
    cipher.final();
    yield cipher.getAuthTag();
    index++;
  }
  if (index !== count) throw new Error(`encrypted file "${storageKey}": fewer than the ${size} bytes announced`);
}

/** Plaintext bytes of a stored file of `storedSize` bytes (the inverse of encryptedSize). */
export function plaintextSize(storedSize: number, chunkBytes: number): number {
  const body = storedSize - HEADER_BYTES;
  return body - Math.ceil(body / (chunkBytes + TAG_BYTES)) * TAG_BYTES;
}
