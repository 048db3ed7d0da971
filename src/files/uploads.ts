// uploadFile: checks what was sent, stores it encrypted (images without their metadata, and with a
// thumbnail) and records the Attachment. The bytes are stored first and the row written last, so the
// database never points at a file that is not complete; if the row cannot be written the stored
// bytes are removed.
// sharp's docs: on glibc Linux the main thread must load sharp before worker threads use it, so its
// shared libraries outlive those threads. Loaded here, before buildApp starts the pool.
import 'sharp';
import type { Services } from '../context.ts';
import { badUserInput } from '../errors.ts';
import type { Attachment, MessageKind } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import { IMAGE_MAX_PIXELS } from '../../workers/images.ts';
import { audioDurationMs } from './audio-duration.ts';
import { writeEncryptedFile } from './encrypted-files.ts';
import { sanitizeFileName } from './file-names.ts';
import { detectMimeType, SNIFF_BYTES } from './file-types.ts';

type UploadServices = Pick<Services, 'config' | 'prisma' | 'pool' | 'storage'>;

/** What the GraphQL multipart request hands a resolver (a WHATWG File). */
export interface UploadedFile {
  name: string;
  size: number;
  arrayBuffer(): Promise<ArrayBuffer | Uint8Array>;
}

const UPLOAD_KINDS: ReadonlySet<MessageKind> = new Set(['IMAGE', 'FILE', 'VOICE']);

/** Storage keys of an attachment's bytes: derived from its id, so they are unique like it. */
export const storageKeysOf = (attachmentId: string) => ({ file: attachmentId, thumbnail: `${attachmentId}.thumb` });

/**
 * Stores an upload for `uploaderId`. `kind` IMAGE requires an image (and makes a thumbnail),
 * VOICE an audio recording; FILE or none accepts anything. Its type comes from the bytes.
 */
export async function uploadFile(services: UploadServices, uploaderId: string, file: UploadedFile, kind: MessageKind | null | undefined): Promise<Attachment> {
  const { config, prisma, storage } = services;
  if (kind != null && !UPLOAD_KINDS.has(kind)) throw badUserInput('kind', 'Uploads are IMAGE, VOICE or FILE (or no kind).');
  const { maxUploadBytes } = config.files;
  if (file.size > maxUploadBytes) throw badUserInput('file', `The file is larger than the upload limit of ${formatBytes(maxUploadBytes)}.`);
  if (file.size === 0) throw badUserInput('file', 'The file is empty.');

  // Yoga has the file in memory already (at most MAX_UPLOAD_BYTES, see upload-limit.ts), in the
  // pieces it arrived in; joining them is one copy (~0.2 ms per MiB), cheaper than streaming them
  // through web streams, which join buffered pieces anyway.
  const bytes = await readAll(file);
  const mimeType = await detectMimeType(bytes.subarray(0, SNIFF_BYTES), kind ?? null);
  const durationMs = kind === 'VOICE' ? audioDurationMs(bytes, mimeType) : null;
  const id = uuidv7();
  const keys = storageKeysOf(id);
  const stored: string[] = [];
  try {
    // An image is stored as the worker hands it back, without its EXIF (GPS position and all); the
    // upload's own bytes move to the worker and are not usable here afterwards.
    const image = kind === 'IMAGE' ? await describeImage(services, bytes) : undefined;
    const original = image ? image.original : bytes;
    const { keyId } = await writeEncryptedFile(storage, config.messageEncryption, keys.file, [original], original.byteLength);
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
        name: sanitizeFileName(file.name),
        mimeType,
        size: original.byteLength,
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
  }
}

async function readAll(file: UploadedFile): Promise<Uint8Array> {
  const data = await file.arrayBuffer();
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

/** Size, thumbnail and the original without metadata, from the pool. Moves `bytes` to the worker: the caller must be done with them. */
async function describeImage({ pool }: Pick<Services, 'pool'>, bytes: Uint8Array) {
  // Only a buffer the view spans alone can be moved; a view into a shared one is copied first.
  const movable = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  const result = await pool.run('describeImage', { bytes: movable }, { bounded: true, transferList: [movable.buffer as ArrayBuffer] });
  if (!result.ok) {
    throw badUserInput(
      'file',
      result.reason === 'too-large' ? `The image has too many pixels (at most ${IMAGE_MAX_PIXELS / 1_000_000} megapixels).` : 'The image could not be read (damaged or unsupported).',
    );
  }
  return result;
}

/** `25 MiB`, `512 KiB`, `100 bytes`: limits in error messages. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
