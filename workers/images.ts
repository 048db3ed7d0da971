// Image uploads: size, thumbnail and a metadata-free original with sharp, as a pool task (decoding a
// photo takes tens of milliseconds of CPU, too long for the event loop). A pure function of the bytes it is given.
import type { Metadata, Sharp, SharpOptions } from 'sharp';
import { TRANSFERABLE_RESULT } from './crypto.ts';
import { orientationExif, stripMetadata } from './strip-metadata.ts';
import { isLosslessWebp } from './webp.ts';

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

export interface DescribeImageInput {
  /** The image file's bytes; transfer its buffer, the caller is done with it. */
  bytes: Uint8Array;
  /** Thumbnails fit in this many pixels on their longer side (THUMBNAIL_MAX_PX). */
  maxThumbnailPx: number;
  /** Bigger images (width x height, per frame) are refused before decoding (IMAGE_MAX_PIXELS). */
  maxPixels: number;
}

export type ImageDescription =
  | {
      ok: true;
      /**
       * The bytes to store instead of the upload: the same image in the same format, without EXIF
       * (GPS position, camera serials), XMP, IPTC or comments. Shown upright: a JPEG keeps its
       * orientation as the one EXIF tag left, other formats are turned. Moved out of the worker.
       */
      original: Uint8Array;
      /** Of `original` as displayed, its orientation applied (whether turned or kept as a tag). */
      width: number;
      height: number;
      /** A WebP (THUMBNAIL_MIME_TYPE) of at most maxThumbnailPx on its longer side, first frame only, without metadata. */
      thumbnail: Uint8Array;
    }
  | { ok: false; reason: 'too-large' | 'unreadable' };

export async function describeImage({ bytes, maxThumbnailPx, maxPixels }: DescribeImageInput): Promise<ImageDescription> {
  const sharp = await loadSharp();
  const options: SharpOptions = { limitInputPixels: maxPixels, failOn: 'error' };
  try {
    const metadata = await sharp(bytes, options).metadata();
    // Animated images report one frame's height as pageHeight.
    const frameHeight = metadata.pageHeight ?? metadata.height;
    if (metadata.width * frameHeight > maxPixels) return { ok: false, reason: 'too-large' };
    const orientation = orientationToApply(metadata);
    const rotated = orientation >= 5;
    const thumbnail = await makeThumbnail(sharp(bytes, options), orientation, maxThumbnailPx);
    const original = await withoutMetadata(sharp, bytes, metadata, orientation, options);
    const description: ImageDescription = {
      ok: true,
      original,
      width: rotated ? frameHeight : metadata.width,
      height: rotated ? metadata.width : frameHeight,
      thumbnail: new Uint8Array(thumbnail),
    };
    // Only a buffer the view spans alone can be moved without taking something else along.
    const movable = original.byteOffset === 0 && original.byteLength === original.buffer.byteLength ? [original.buffer] : [];
    return Object.defineProperty(description, TRANSFERABLE_RESULT, { value: movable, enumerable: false });
  } catch {
    // libvips' messages name no user-facing cause; corrupt or truncated pixel data ends up here.
    return { ok: false, reason: 'unreadable' };
  }
}

/**
 * The EXIF orientation the image is shown with (1: none): the thumbnail and the size apply it, the
 * stored original keeps it as a tag or is turned by it. libvips cannot rotate multi-page images, so
 * an animation keeps its frames as stored (and loses the tag), and is described that way.
 */
const orientationToApply = (metadata: Metadata) => ((metadata.pages ?? 1) > 1 ? 1 : (metadata.orientation ?? 1));

/** The first frame, upright, at most `maxPx` on its longer side. */
function makeThumbnail(image: Sharp, orientation: number, maxPx: number): Promise<Buffer> {
  if (orientation !== 1) image.autoOrient();
  return image.resize(maxPx, maxPx, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 70 }).toBuffer();
}

/**
 * Whether sharp finds nothing in a file that viewers could read besides the pixels, but for the
 * orientation: as `orientation` (1: none), its EXIF exactly the one stripMetadata writes for it.
 */
function onlyOrientationLeft(metadata: Metadata, orientation: number): boolean {
  if ((metadata.orientation ?? 1) !== orientation) return false;
  const exifLeft = metadata.exif && !(orientation !== 1 && metadata.exif.equals(orientationExif(orientation)));
  return !(exifLeft || metadata.xmp || metadata.iptc || metadata.tifftagPhotoshop || metadata.comments?.length);
}

/**
 * The original to store. Losslessly stripped when the format allows (same encoded pixels, so no
 * quality lost, and no decoding): a JPEG keeps an orientation as its only EXIF, which viewers
 * apply. Re-encoded, turned upright, when another format has an orientation (browsers ignore the
 * tag in WebP and, but for Safari, in PNG; dropping it alone would turn the picture), and when sharp
 * still sees metadata in what stripping left (an AVIF with any, as stripMetadata does not handle
 * AVIF). An AVIF without metadata is stored as sent.
 */
async function withoutMetadata(sharp: SharpFactory, bytes: Uint8Array, metadata: Metadata, orientation: number, options: SharpOptions): Promise<Uint8Array> {
  const stripped = stripMetadata(bytes, metadata.format, orientation);
  if (stripped || orientation === 1) {
    // A stripped file sharp cannot read is a bug here, not the user's: re-encode the upload instead.
    const left = stripped ? await sharp(stripped, options).metadata().catch(() => undefined) : metadata;
    if (left && onlyOrientationLeft(left, orientation)) return stripped ?? bytes;
  }
  return reencode(sharp, bytes, metadata, orientation, options);
}

/**
 * The image decoded and encoded again in its own format, upright, keeping only its ICC profile
 * (sharp writes no other metadata unless told to; without the profile colours would shift).
 * Lossless formats stay lossless (PNG, lossless WebP); lossy ones are encoded at high quality.
 */
async function reencode(sharp: SharpFactory, bytes: Uint8Array, metadata: Metadata, orientation: number, options: SharpOptions): Promise<Uint8Array> {
  const animated = (metadata.pages ?? 1) > 1;
  const image = sharp(bytes, { ...options, animated }).keepIccProfile();
  if (orientation !== 1) image.autoOrient();
  const output = await encoderFor(metadata, bytes)(image).toBuffer();
  return new Uint8Array(output); // a copy it spans alone, so it can be moved
}

function encoderFor(metadata: Metadata, bytes: Uint8Array): (image: Sharp) => Sharp {
  switch (metadata.format) {
    case 'jpeg':
      // Photos keep full-resolution colour when they had it; otherwise 4:2:0, like cameras write.
      return (image) => image.jpeg({ quality: 92, chromaSubsampling: metadata.chromaSubsampling === '4:4:4' ? '4:4:4' : '4:2:0' });
    case 'png':
      return pngEncoder(metadata);
    case 'webp':
      // `exact`: the colour under fully transparent pixels is kept too, so every pixel stays as sent.
      return isLosslessWebp(bytes) ? (image) => image.webp({ lossless: true, exact: true }) : (image) => image.webp({ quality: 90 });
    case 'gif':
      return (image) => image.gif();
    case 'heif':
      // AVIF: the only HEIF that IMAGE uploads accept (src/files/file-types.ts).
      return (image) => image.avif({ quality: 75 });
    default:
      throw new Error(`No encoder for ${metadata.format}`);
  }
}

/**
 * A PNG as the input stored its samples; sharp's default is 8-bit RGB(A) whatever came in. A palette
 * stays a palette of as many entries as its bit depth allows: the image has no more colours than
 * that, so libimagequant keeps every visible pixel (it may change the colour under a fully
 * transparent one), and the file stays about as small as sent (RGB was ~1.7x the size; quantising
 * costs ~3x the CPU of a plain encode, acceptable as only an orientation makes a PNG re-encoded).
 * 16 bits a sample stay 16.
 */
function pngEncoder(metadata: Metadata): (image: Sharp) => Sharp {
  if (metadata.isPalette) return (image) => image.png({ palette: true, colours: 2 ** (metadata.bitsPerSample ?? 8) });
  if (metadata.depth === 'ushort') return (image) => image.toColourspace(metadata.space === 'grey16' ? 'grey16' : 'rgb16').png();
  return (image) => image.png();
}
