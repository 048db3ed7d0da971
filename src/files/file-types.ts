// What an upload is, decided from its bytes (file-type's magic numbers), never from the name or
// the Content-Type the client sent: IMAGE must be an image we can thumbnail, VOICE a common
// voice-note container, FILE anything.
import { fileTypeFromBuffer } from 'file-type';
import { badUserInput } from '../errors.ts';
import type { MessageKind } from '../generated/prisma/enums.ts';

/** Images sharp decodes with its prebuilt binaries that browsers also show; served inline. */
export const IMAGE_TYPES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif']);

/**
 * Voice recordings: sniffed type -> stored type. Browsers' MediaRecorder writes WebM (Chrome,
 * Firefox) or MP4 (Safari), which file-type reports as video; a VOICE upload is audio by intent,
 * and clients play it with an audio element either way.
 */
const VOICE_TYPES: ReadonlyMap<string, string> = new Map([
  ['audio/ogg', 'audio/ogg'],
  ['audio/ogg; codecs=opus', 'audio/ogg; codecs=opus'],
  ['audio/opus', 'audio/ogg; codecs=opus'],
  ['audio/webm', 'audio/webm'],
  ['video/webm', 'audio/webm'],
  ['audio/mp4', 'audio/mp4'],
  ['audio/x-m4a', 'audio/mp4'],
  ['video/mp4', 'audio/mp4'],
  ['audio/mpeg', 'audio/mpeg'],
  ['audio/wav', 'audio/wav'],
  ['audio/vnd.wave', 'audio/wav'],
  ['audio/aac', 'audio/aac'],
]);

/** Bytes detectMimeType needs: enough for every signature file-type checks in the formats above (and most others). */
export const SNIFF_BYTES = 64 * 1024;
const UNKNOWN = 'application/octet-stream';

/**
 * The MIME type to store for a file whose first bytes are `head` (SNIFF_BYTES suffice), uploaded as
 * `kind` (null: a generic file); BAD_USER_INPUT when the content does not fit the kind.
 */
export async function detectMimeType(head: Uint8Array, kind: MessageKind | null): Promise<string> {
  const sniffed = (await fileTypeFromBuffer(head.subarray(0, SNIFF_BYTES)))?.mime;
  if (kind === 'IMAGE') {
    if (!sniffed || !IMAGE_TYPES.has(sniffed)) {
      throw badUserInput('file', `An IMAGE must be a JPEG, PNG, GIF, WebP or AVIF image${sniffed ? ` (this is ${sniffed})` : ''}.`);
    }
    return sniffed;
  }
  if (kind === 'VOICE') {
    const voice = sniffed && VOICE_TYPES.get(sniffed);
    if (!voice) {
      throw badUserInput('file', `A VOICE recording must be Ogg/Opus, WebM, MP4/M4A, MP3, WAV or AAC audio${sniffed ? ` (this is ${sniffed})` : ''}.`);
    }
    return voice;
  }
  return sniffed ?? UNKNOWN;
}

/** Types a browser may render in place: raster images only (never SVG, HTML or PDF, which can run script). */
export const isInlineSafe = (mimeType: string) => IMAGE_TYPES.has(mimeType);
