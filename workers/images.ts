// Image uploads: size and thumbnail with sharp, as a pool task (decoding a photo takes tens of
// milliseconds of CPU, too long for the event loop). A pure function of the bytes it is given.
import type { Sharp, SharpOptions } from 'sharp';

type SharpFactory = (input: Uint8Array, options: SharpOptions) => Sharp;
let sharpLoaded: Promise<SharpFactory> | undefined;

/**
 * Loaded on first use, so pools that never see an image never load libvips in their threads (on
 * glibc, a thread loading sharp needs the main thread to have loaded it too: src/files/uploads.ts).
 */
function loadSharp(): Promise<SharpFactory> {
  return (sharpLoaded ??= import('sharp').then(({ default: sharp }) => {
    // The pool's threads are the parallelism: one libvips thread per task keeps two tasks from
    // fighting over the cores, and nothing is worth caching between unrelated images.
    sharp.concurrency(1);
    sharp.cache(false);
    return sharp;
  }));
}

/** Thumbnails fit in this many pixels on their longer side. */
export const THUMBNAIL_MAX_PX = 320;
/** Bigger images (width x height, per frame) are refused before decoding: a small file can declare a huge canvas. */
export const IMAGE_MAX_PIXELS = 100_000_000;
export const THUMBNAIL_MIME_TYPE = 'image/webp';

export interface DescribeImageInput {
  /** The image file's bytes; transfer its buffer, the caller is done with it. */
  bytes: Uint8Array;
  /** Default THUMBNAIL_MAX_PX. */
  maxThumbnailPx?: number;
}

export type ImageDescription =
  | {
      ok: true;
      /** As displayed, i.e. after the EXIF orientation is applied. */
      width: number;
      height: number;
      /** A WebP of at most maxThumbnailPx on its longer side, first frame only, without metadata. */
      thumbnail: Uint8Array;
    }
  | { ok: false; reason: 'too-large' | 'unreadable' };

export async function describeImage({ bytes, maxThumbnailPx = THUMBNAIL_MAX_PX }: DescribeImageInput): Promise<ImageDescription> {
  const sharp = await loadSharp();
  const options: SharpOptions = { limitInputPixels: IMAGE_MAX_PIXELS, failOn: 'error' };
  try {
    const metadata = await sharp(bytes, options).metadata();
    // Animated images report one frame's height as pageHeight.
    const frameHeight = metadata.pageHeight ?? metadata.height;
    if (metadata.width * frameHeight > IMAGE_MAX_PIXELS) return { ok: false, reason: 'too-large' };
    const rotated = metadata.orientation !== undefined && metadata.orientation >= 5;
    const thumbnail = await sharp(bytes, options)
      .autoOrient()
      .resize(maxThumbnailPx, maxThumbnailPx, { fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 70 })
      .toBuffer();
    return {
      ok: true,
      width: rotated ? frameHeight : metadata.width,
      height: rotated ? metadata.width : frameHeight,
      thumbnail: new Uint8Array(thumbnail),
    };
  } catch {
    // libvips' messages name no user-facing cause; corrupt or truncated pixel data ends up here.
    return { ok: false, reason: 'unreadable' };
  }
}
