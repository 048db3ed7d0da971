// WebP's container: "RIFF", a size, "WEBP", then chunks of a four-letter type, a little-endian
// payload size and the payload, padded to an even length. Animation frames (ANMF) hold chunks of
// their own after a frame header. Pure functions of the bytes, for the worker tasks.

export interface WebpChunk {
  type: string;
  /** Where the chunk starts (its type). */
  start: number;
  /** Where its payload starts and ends (before the padding). */
  payloadStart: number;
  payloadEnd: number;
  /** Where the next chunk starts. */
  end: number;
}

/** ANMF's payload starts with the frame's offset, size, duration and flags (3+3+3+3+3+1 bytes). */
const ANMF_HEADER_BYTES = 16;
/** The chunks holding a picture: lossy (VP8, its alpha in an ALPH chunk beside it) or lossless (VP8L). */
const BITSTREAMS: ReadonlySet<string> = new Set(['VP8 ', 'VP8L']);

export const isWebp = (bytes: Buffer) => bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP';

/**
 * The chunks of a WebP file, or of the part [from, to) of it (an animation frame's), in order. The
 * RIFF size bounds the file (bytes after it are not the image's). Throws RangeError where a size
 * points past that end: a truncated or malformed file.
 */
export function* webpChunks(bytes: Buffer, from = 12, to = 8 + bytes.readUInt32LE(4)): Generator<WebpChunk> {
  if (to > bytes.length) throw new RangeError(`WebP: RIFF size ${to - 8} is past the end of the file`);
  for (let start = from; start < to; ) {
    const payloadStart = start + 8;
    const payloadEnd = payloadStart + bytes.readUInt32LE(start + 4);
    const end = payloadEnd + ((payloadEnd - payloadStart) % 2);
    if (end > to) throw new RangeError(`WebP: chunk at ${start} runs past its container`);
    yield { type: bytes.toString('latin1', start, start + 4), start, payloadStart, payloadEnd, end };
    start = end;
  }
}

/**
 * Whether every picture in a WebP file is lossless (VP8L): the still image, or each animation
 * frame. sharp's metadata does not tell lossless from lossy; the chunks do. False for a lossy or
 * mixed file, and for one too malformed to walk.
 */
export function isLosslessWebp(bytes: Uint8Array): boolean {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isWebp(buffer)) return false;
  try {
    const pictures = [...webpChunks(buffer)]
      .flatMap((chunk) => (chunk.type === 'ANMF' ? [...webpChunks(buffer, chunk.payloadStart + ANMF_HEADER_BYTES, chunk.payloadEnd)] : [chunk]))
      .filter((chunk) => BITSTREAMS.has(chunk.type));
    return pictures.length > 0 && pictures.every((chunk) => chunk.type === 'VP8L');
  } catch (error) {
    if (error instanceof RangeError) return false;
    throw error;
  }
}
