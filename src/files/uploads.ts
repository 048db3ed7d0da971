// uploadFile: checks what was sent, stores it encrypted (images without their metadata, and with a
// thumbnail) and records the Attachment. The bytes are stored first and the row written last, so the
// database never points at a file that is not complete; if the row cannot be written the stored
// bytes are removed.
// sharp's docs: on glibc Linux the main thread must load sharp before worker threads use it, so its
// shared libraries outlive those threads. Loaded here, before buildApp starts the pool.
import 'sharp';
import type { Services } from '../services.ts';
import { badUserInput } from '../errors.ts';
import type { Attachment, MessageKind } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import { AUDIO_TAIL_BYTES, audioDurationMs } from './audio-duration.ts';
import { writeEncryptedFile } from './encrypted-files.ts';
import { sanitizeFileName } from './file-names.ts';
import { detectMimeType, SNIFF_BYTES } from './file-types.ts';
import { IMAGE_MAX_PIXELS, THUMBNAIL_MAX_PX } from './image-limits.ts';
import type { UploadLease } from './upload-memory.ts';
import { formatBytes, IMAGE_WORKING_COPIES } from './upload-sizes.ts';

type UploadServices = Pick<Services, 'config' | 'prisma' | 'pool' | 'storage' | 'uploadMemory'>;

/** What the GraphQL multipart request hands a resolver (a WHATWG File). */
export interface UploadedFile {
  name: string;
  size: number;
  /** The file's pieces as they arrived; every call reads them anew, without joining or copying them. */
  stream(): AsyncIterable<Uint8Array>;
}

const UPLOAD_KINDS: ReadonlySet<MessageKind> = new Set(['IMAGE', 'FILE', 'VOICE']);

/** Storage keys of an attachment's bytes: derived from its id, so they are unique like it. */
export const storageKeysOf = (attachmentId: string) => ({ file: attachmentId, thumbnail: `${attachmentId}.thumb` });

/** What an end-to-end encrypted upload is stored as: the server cannot know more, and keeps no name. */
export const ENCRYPTED_UPLOAD = { mimeType: 'application/octet-stream', name: 'encrypted.bin' } as const;

/**
 * Stores an upload for `uploaderId`. `kind` IMAGE requires an image (and makes a thumbnail),
 * VOICE an audio recording; FILE or none accepts anything. Its type comes from the bytes. An
 * `encrypted` upload (the client encrypted it for an end-to-end encrypted chat) is a FILE stored
 * exactly as sent: never sniffed, thumbnailed or stripped.
 */
export async function uploadFile(
  services: UploadServices,
  uploaderId: string,
  file: UploadedFile,
  kind: MessageKind | null | undefined,
  encrypted = false,
): Promise<Attachment> {
  const { config, prisma, storage } = services;
  if (kind != null && !UPLOAD_KINDS.has(kind)) throw badUserInput('kind', 'Uploads are IMAGE, VOICE or FILE (or no kind).');
  if (encrypted && kind != null && kind !== 'FILE') {
    throw badUserInput('kind', 'An encrypted upload is a FILE: the server cannot see what it holds (say what it is inside the envelopes).');
  }
  const { maxUploadBytes } = config.files;
  if (file.size > maxUploadBytes) throw badUserInput('file', `The file is larger than the upload limit of ${formatBytes(maxUploadBytes)}.`);
  if (file.size === 0) throw badUserInput('file', 'The file is empty.');

  // Yoga has the file in memory already (at most MAX_UPLOAD_BYTES, see
  // server/plugins/upload-limits.ts), in the pieces it arrived in. Only what is read here is copied (its start, a voice note's end); the
  // pieces themselves are sealed as they are, so a FILE or VOICE upload holds no second copy.
  const head = encrypted ? undefined : await copyOf(file, 0, SNIFF_BYTES);
  const mimeType = head ? await detectMimeType(head, kind ?? null) : ENCRYPTED_UPLOAD.mimeType;
  const durationMs =
    head && kind === 'VOICE' ? audioDurationMs({ head, tail: await copyOf(file, file.size - AUDIO_TAIL_BYTES, file.size), size: file.size }, mimeType) : null;
  const id = uuidv7();
  const keys = storageKeysOf(id);
  const stored: string[] = [];
  // An image's working copies count against UPLOAD_MEMORY_BYTES like its body does (upload-sizes.ts).
  const imageMemory = kind === 'IMAGE' ? services.uploadMemory.lease() : undefined;
  try {
    // An image is stored as the worker hands it back, without its EXIF (GPS position and all).
    const image = imageMemory ? await describeImage(services, file, imageMemory) : undefined;
    const size = image ? image.original.byteLength : file.size;
    const { keyId } = await writeEncryptedFile(storage, config.messageEncryption, keys.file, image ? [image.original] : file.stream(), size);
    stored.push(keys.file);
    if (image) {
      await writeEncryptedFile(storage, config.messageEncryption, keys.thumbnail, [image.thumbnail], image.thumbnail.byteLength);
      stored.push(keys.thumbnail);
    }
    return await prisma.attachment.create({
      data: {
        id,
        uploaderId,
        kind: kind ?? null,
        name: encrypted ? ENCRYPTED_UPLOAD.name : sanitizeFileName(file.name),
        mimeType,
        encrypted,
        size,
        storageKey: keys.file,
        contentKeyId: keyId,
        width: image?.width ?? null,
        height: image?.height ?? null,
        durationMs,
        thumbnailKey: image ? keys.thumbnail : null,
      },
    });
  } catch (error) {
    await Promise.all(stored.map((key) => storage.delete(key).catch(() => {})));
    throw error;
  } finally {
    imageMemory?.release();
  }
}

/**
 * Bytes [start, end) of the file (clamped to it) in a buffer of their own, so it can be moved to a
 * worker as it is; the pieces outside the range are skipped, not copied.
 */
async function copyOf(file: UploadedFile, start: number, end: number): Promise<Uint8Array> {
  const from = Math.max(0, start);
  const to = Math.min(end, file.size);
  const copy = Buffer.allocUnsafeSlow(Math.max(0, to - from));
  let copied = 0;
  let at = 0; // where the piece starts in the file
  for await (const piece of file.stream()) {
    const first = Math.max(from, at);
    const last = Math.min(to, at + piece.byteLength);
    if (first < last) copy.set(piece.subarray(first - at, last - at), first - from);
    copied += Math.max(0, last - first);
    at += piece.byteLength;
    if (at >= to) break;
  }
  // Unfilled, the buffer would hold whatever memory it was given before: never store that.
  if (copied !== copy.byteLength) throw new Error(`upload "${file.name}" has ${at} bytes, not the ${file.size} it reports`);
  return copy;
}

/**
 * Size, thumbnail and the original without metadata, from the pool. The file is joined into one
 * buffer (sharp needs it whole) that moves to the worker; `memory` leases that copy and the original
 * coming back, waiting for room like a request body does.
 */
async function describeImage({ pool }: Pick<Services, 'pool'>, file: UploadedFile, memory: UploadLease) {
  await memory.grow(IMAGE_WORKING_COPIES * file.size);
  const bytes = await copyOf(file, 0, file.size);
  const input = { bytes, maxThumbnailPx: THUMBNAIL_MAX_PX, maxPixels: IMAGE_MAX_PIXELS };
  const result = await pool.run('describeImage', input, { bounded: true, transferList: [bytes.buffer as ArrayBuffer] });
  if (!result.ok) {
    throw badUserInput(
      'file',
      result.reason === 'too-large' ? `The image has too many pixels (at most ${IMAGE_MAX_PIXELS / 1_000_000} megapixels).` : 'The image could not be read (damaged or unsupported).',
    );
  }
  return result;
}
