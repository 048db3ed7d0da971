// Voice-note lengths for Attachment.durationMs, read from container headers for the two formats
// where that is cheap and exact: WAV (data size / byte rate) and Ogg (last page's granule
// position). Other containers (WebM, MP4, MP3) need a demuxer; their duration stays null.

/** Milliseconds of audio, or null when the format is not one we read or the header is odd. */
export function audioDurationMs(bytes: Uint8Array, mimeType: string): number | null {
  if (mimeType === 'audio/wav') return wavDurationMs(bytes);
  if (mimeType.startsWith('audio/ogg')) return oggDurationMs(bytes);
  return null;
}

const ascii = (bytes: Uint8Array, at: number, length: number) => Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString('latin1');

function wavDurationMs(bytes: Uint8Array): number | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 12 || ascii(bytes, 0, 4) !== 'RIFF' || ascii(bytes, 8, 4) !== 'WAVE') return null;
  let byteRate = 0;
  // RIFF chunks: id (4), size (u32 LE), body padded to an even length. Real files have a handful
  // before `data`; the cap keeps a crafted file of empty chunks from costing a long loop.
  for (let at = 12, seen = 0; at + 8 <= bytes.byteLength && seen < 64; seen++) {
    const id = ascii(bytes, at, 4);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ' && at + 16 <= bytes.byteLength) byteRate = view.getUint32(at + 16, true);
    if (id === 'data') {
      // Streaming writers leave the size at 0 or 0xFFFFFFFF; what is there is what plays.
      const available = bytes.byteLength - at - 8;
      const dataBytes = size === 0 || size > available ? available : size;
      return byteRate > 0 ? Math.round((dataBytes * 1_000) / byteRate) : null;
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

const OGG_SEARCH_BYTES = 128 * 1024;

function oggDurationMs(bytes: Uint8Array): number | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // The first page holds the codec's identification header: OpusHead (always 48 kHz granules,
  // minus the pre-skip) or Vorbis (granules at the stream's sample rate).
  if (bytes.byteLength < 28 || ascii(bytes, 0, 4) !== 'OggS') return null;
  const headerStart = 27 + bytes[26]!;
  if (headerStart + 19 > bytes.byteLength) return null;
  let sampleRate: number;
  let preSkip = 0;
  if (ascii(bytes, headerStart, 8) === 'OpusHead') {
    sampleRate = 48_000;
    preSkip = view.getUint16(headerStart + 10, true);
  } else if (ascii(bytes, headerStart, 7) === '\u0001vorbis') {
    sampleRate = view.getUint32(headerStart + 12, true);
  } else {
    return null;
  }
  // The last page with a granule position (-1 means "no packet ends here") gives the length. Pages
  // are at most ~64 KiB, so the search stays within the last two.
  const searchFrom = Math.max(0, bytes.byteLength - OGG_SEARCH_BYTES);
  for (let at = bytes.byteLength - 27; at >= searchFrom; at--) {
    if (bytes[at] !== 0x4f || ascii(bytes, at, 4) !== 'OggS') continue;
    const granule = view.getBigInt64(at + 6, true);
    if (granule < 0n) continue;
    return sampleRate > 0 ? Math.max(0, Math.round(((Number(granule) - preSkip) * 1_000) / sampleRate)) : null;
  }
  return null;
}
