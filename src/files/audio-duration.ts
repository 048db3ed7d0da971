// Voice-note lengths for Attachment.durationMs, read from container headers for the two formats
// where that is cheap and exact: WAV (data size / byte rate) and Ogg (last page's granule
// position). Other containers (WebM, MP4, MP3) need a demuxer; their duration stays null.
// Only a recording's start and end are read, so the upload itself is never joined into one copy.

/** What is read of a recording: its first bytes (SNIFF_BYTES suffice), its last AUDIO_TAIL_BYTES and its size. */
export interface AudioEnds {
  head: Uint8Array;
  tail: Uint8Array;
  size: number;
}

/** Milliseconds of audio, or null when the format is not one we read or the header is odd. */
export function audioDurationMs(audio: AudioEnds, mimeType: string): number | null {
  if (mimeType === 'audio/wav') return wavDurationMs(audio.head, audio.size);
  if (mimeType.startsWith('audio/ogg')) return oggDurationMs(audio.head, audio.tail);
  return null;
}

const ascii = (bytes: Uint8Array, at: number, length: number) => Buffer.from(bytes.buffer, bytes.byteOffset + at, length).toString('latin1');

/** `head`: the file's first bytes, where its chunks before `data` are (a few hundred bytes in real files). */
function wavDurationMs(head: Uint8Array, fileSize: number): number | null {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength < 12 || ascii(head, 0, 4) !== 'RIFF' || ascii(head, 8, 4) !== 'WAVE') return null;
  let byteRate = 0;
  // RIFF chunks: id (4), size (u32 LE), body padded to an even length. Real files have a handful
  // before `data`; the cap keeps a crafted file of empty chunks from costing a long loop.
  for (let at = 12, seen = 0; at + 8 <= head.byteLength && seen < 64; seen++) {
    const id = ascii(head, at, 4);
    const size = view.getUint32(at + 4, true);
    // The byte rate is the u32 at offset 8 of the fmt body, so 20 bytes from the chunk's start.
    if (id === 'fmt ' && at + 20 <= head.byteLength) byteRate = view.getUint32(at + 16, true);
    if (id === 'data') {
      // Streaming writers leave the size at 0 or 0xFFFFFFFF; what is there is what plays.
      const available = fileSize - at - 8;
      const dataBytes = size === 0 || size > available ? available : size;
      return byteRate > 0 ? Math.round((dataBytes * 1_000) / byteRate) : null;
    }
    at += 8 + size + (size % 2);
  }
  return null;
}

/**
 * The end of a file that is searched for Ogg's last page. Pages are at most ~64 KiB, so the last
 * one with a granule position lies within the last two.
 */
export const AUDIO_TAIL_BYTES = 128 * 1024;

function oggDurationMs(head: Uint8Array, tail: Uint8Array): number | null {
  // The first page holds the codec's identification header: OpusHead (always 48 kHz granules,
  // minus the pre-skip) or Vorbis (granules at the stream's sample rate).
  if (head.byteLength < 28 || ascii(head, 0, 4) !== 'OggS') return null;
  const headView = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const headerStart = 27 + head[26]!;
  if (headerStart + 19 > head.byteLength) return null;
  let sampleRate: number;
  let preSkip = 0;
  if (ascii(head, headerStart, 8) === 'OpusHead') {
    sampleRate = 48_000;
    preSkip = headView.getUint16(headerStart + 10, true);
  } else if (ascii(head, headerStart, 7) === '\u0001vorbis') {
    sampleRate = headView.getUint32(headerStart + 12, true);
  } else {
    return null;
  }
  // The last page with a granule position (-1 means "no packet ends here") gives the length.
  const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  for (let at = tail.byteLength - 27; at >= 0; at--) {
    if (tail[at] !== 0x4f || ascii(tail, at, 4) !== 'OggS') continue;
    const granule = view.getBigInt64(at + 6, true);
    if (granule < 0n) continue;
    return sampleRate > 0 ? Math.max(0, Math.round(((Number(granule) - preSkip) * 1_000) / sampleRate)) : null;
  }
  return null;
}
