// How many bytes an upload takes: on the wire, and in memory at its peak; and how a limit reads in
// an error message. No imports, so env.ts can validate UPLOAD_MEMORY_BYTES against MAX_UPLOAD_BYTES
// without loading the files code.

/** Room for the multipart framing and the `operations` and `map` fields around the file. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** Largest multipart body accepted for files of up to `maxUploadBytes`. */
export const multipartBodyLimit = (maxUploadBytes: number) => maxUploadBytes + MULTIPART_OVERHEAD_BYTES;

/**
 * Copies of an IMAGE held besides its request body: the joined bytes moved to the worker (sharp
 * needs them in one piece) and the metadata-free original it hands back. Other kinds are streamed
 * from the body's own pieces and hold no copy.
 */
export const IMAGE_WORKING_COPIES = 2;

/** The most memory one upload of `maxUploadBytes` holds at once: a largest image, while the worker has it. */
export const uploadPeakBytes = (maxUploadBytes: number) => multipartBodyLimit(maxUploadBytes) + IMAGE_WORKING_COPIES * maxUploadBytes;

/** `25 MiB`, `512 KiB`, `100 bytes`: limits in error messages. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
