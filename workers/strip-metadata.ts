// Lossless metadata removal for uploaded images: copies the pieces of the file a viewer needs to
// render it (pixels, palettes, colour profile, animation control) and leaves out the rest (EXIF
// with its GPS position and camera serials, XMP, IPTC, comments, appended extra images). The
// encoded pixels are copied byte for byte, so quality is untouched. A JPEG can keep its EXIF
// orientation as the one tag left, so a portrait photo stays lossless too. Pure functions of the
// bytes; workers/images.ts runs them in the worker pool and re-encodes what they cannot handle.
import { isWebp, webpChunks } from './webp.ts';

/**
 * `bytes` without metadata, as a new buffer it alone spans (so it can be moved between threads);
 * null when the format is not one handled here or the file is not well-formed enough to walk.
 * `format` is sharp's name for it (`metadata().format`). An `orientation` other than 1 (the EXIF
 * one the image is shown with) is kept as the only EXIF left, and only in a JPEG: browsers apply it
 * there (CSS `image-orientation: from-image`), while none applies a WebP's and only Safari a PNG's
 * eXIf, and a GIF has no place for one; those give null, to be turned upright by re-encoding.
 */
export function stripMetadata(bytes: Uint8Array, format: string | undefined, orientation = 1): Uint8Array | null {
  const strip = STRIPPERS[format ?? ''];
  if (!strip || (orientation !== 1 && format !== 'jpeg')) return null;
  try {
    return strip(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), orientation);
  } catch (error) {
    // Buffer's reads throw RangeError past the end: a length field that points outside the file.
    if (error instanceof RangeError) return null;
    throw error;
  }
}

type Stripper = (bytes: Buffer, orientation: number) => Uint8Array | null;
/** [start, end) byte ranges of the input to keep, and new bytes to put in, in order. */
type Ranges = Array<[number, number] | Uint8Array>;

const STRIPPERS: Record<string, Stripper> = { jpeg: stripJpeg, png: stripPng, webp: stripWebp, gif: stripGif };

function joinRanges(bytes: Buffer, ranges: Ranges): Uint8Array {
  const pieces = ranges.map((range) => (range instanceof Uint8Array ? range : bytes.subarray(...range)));
  const out = new Uint8Array(pieces.reduce((total, piece) => total + piece.byteLength, 0));
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.byteLength;
  }
  return out;
}

const startsWith = (bytes: Buffer, at: number, ascii: string) => bytes.toString('latin1', at, at + ascii.length) === ascii;

const EXIF_IDENTIFIER = 'Exif\0\0';

/**
 * An EXIF block as JPEG's APP1 carries it (sharp's `metadata().exif`) holding nothing but the
 * orientation: a big-endian TIFF header and an IFD0 with the one entry Orientation (0x0112, SHORT,
 * count 1) and no next IFD, so no GPS or EXIF sub-IFD, maker notes or thumbnail.
 */
export function orientationExif(orientation: number): Uint8Array {
  const exif = Buffer.alloc(32); // zero-filled: the value's padding and the next-IFD offset stay 0
  exif.write(`${EXIF_IDENTIFIER}MM`, 0, 'latin1');
  exif.writeUInt16BE(42, 8); // TIFF magic
  exif.writeUInt32BE(8, 10); // IFD0's offset, counted from the TIFF header
  exif.writeUInt16BE(1, 14); // entries
  exif.writeUInt16BE(0x0112, 16);
  exif.writeUInt16BE(3, 18); // SHORT
  exif.writeUInt32BE(1, 20); // count
  exif.writeUInt16BE(orientation, 24); // a value that fits is stored in the entry, left-justified
  return exif;
}

// --- JPEG: a sequence of marker segments; entropy-coded scan data follows each SOS. ---

const JPEG_SOS = 0xda;
const JPEG_EOI = 0xd9;

/**
 * APPn segments worth keeping, by marker and identifier: JFIF (density, for old decoders), the ICC
 * profile, and Adobe's (it says how to read the colour channels). Every other APPn (Exif and XMP in
 * APP1, MPF's extra images in APP2, C2PA in APP11, IPTC in APP13, ...) and COM is left out, but
 * for an orientation's own EXIF (stripJpeg); non-APP segments (frame, tables, scans, restart
 * interval) are all kept.
 */
const JPEG_KEPT_APP: ReadonlyArray<[marker: number, identifier: string]> = [
  [0xe0, 'JFIF\0'],
  [0xe2, 'ICC_PROFILE\0'],
  [0xee, 'Adobe'],
];

const isJpegMetadata = (bytes: Buffer, marker: number, payload: number) =>
  marker === 0xfe ||
  (marker >= 0xe0 && marker <= 0xef && !JPEG_KEPT_APP.some(([kept, identifier]) => kept === marker && startsWith(bytes, payload, identifier)));

/** Markers without a length: TEM and the restart markers RST0-7. */
const isStandaloneMarker = (marker: number) => marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7);

/** An APP1 segment holding `orientationExif`. */
function jpegOrientationSegment(orientation: number): Uint8Array {
  const exif = orientationExif(orientation);
  const segment = Buffer.alloc(4 + exif.byteLength);
  segment.writeUInt16BE(0xffe1, 0);
  segment.writeUInt16BE(2 + exif.byteLength, 2);
  segment.set(exif, 4);
  return segment;
}

function stripJpeg(bytes: Buffer, orientation: number): Uint8Array | null {
  if (bytes.readUInt16BE(0) !== 0xffd8) return null;
  const ranges: Ranges = [[0, 2]];
  // Takes the place of the file's first EXIF, where its writer put it for viewers to read.
  let orientationSegment = orientation === 1 ? undefined : jpegOrientationSegment(orientation);
  /** The file as kept; null when the orientation found no EXIF to replace (the caller re-encodes then). */
  const kept = () => (orientationSegment ? null : joinRanges(bytes, ranges));
  let pos = 2;
  while (pos < bytes.length) {
    if (bytes.readUInt8(pos) !== 0xff) return null;
    const marker = bytes.readUInt8(pos + 1);
    if (marker === 0xff) {
      pos += 1; // fill byte before a marker
      continue;
    }
    if (marker === JPEG_EOI) {
      // Whatever follows the image (MPF's second images, phone makers' trailers, motion-photo
      // videos) is dropped: those carry their own EXIF.
      ranges.push([pos, pos + 2]);
      return kept();
    }
    if (isStandaloneMarker(marker)) {
      ranges.push([pos, pos + 2]);
      pos += 2;
      continue;
    }
    const end = pos + 2 + bytes.readUInt16BE(pos + 2);
    if (end > bytes.length) return null;
    if (!isJpegMetadata(bytes, marker, pos + 4)) {
      ranges.push([pos, end]);
    } else if (orientationSegment && marker === 0xe1 && startsWith(bytes, pos + 4, EXIF_IDENTIFIER)) {
      ranges.push(orientationSegment);
      orientationSegment = undefined;
    }
    pos = end;
    if (marker === JPEG_SOS) {
      const scanEnd = endOfScan(bytes, pos);
      ranges.push([pos, scanEnd]);
      pos = scanEnd;
    }
  }
  // No EOI: a truncated file that decoders still show; keep what there is.
  return kept();
}

/** Where the entropy-coded data starting at `from` ends: the next 0xFF that is not a stuffed 0xFF00 or an RSTn. */
function endOfScan(bytes: Buffer, from: number): number {
  let pos = from;
  for (;;) {
    const ff = bytes.indexOf(0xff, pos);
    if (ff === -1 || ff + 1 >= bytes.length) return bytes.length;
    const next = bytes.readUInt8(ff + 1);
    if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) pos = ff + 2;
    else return ff;
  }
}

// --- PNG: a signature, then length-type-data-CRC chunks up to IEND. ---

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Chunks that affect how the image looks (PNG 3rd edition, APNG included); all others (tEXt, zTXt
 * and iTXt with XMP and IPTC, eXIf, tIME, private ones like Apple's iDOT or C2PA's caBX) go.
 */
const PNG_KEPT_CHUNKS: ReadonlySet<string> = new Set([
  'IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS', 'cHRM', 'gAMA', 'iCCP', 'sBIT', 'sRGB', 'cICP', 'mDCV', 'cLLI', 'bKGD', 'pHYs', 'acTL', 'fcTL', 'fdAT',
]);

function stripPng(bytes: Buffer): Uint8Array | null {
  if (!bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) return null;
  const ranges: Ranges = [[0, PNG_SIGNATURE.length]];
  let pos = PNG_SIGNATURE.length;
  while (pos < bytes.length) {
    const type = bytes.toString('latin1', pos + 4, pos + 8);
    const end = pos + 12 + bytes.readUInt32BE(pos); // length, type, data, CRC
    if (end > bytes.length) return null;
    if (PNG_KEPT_CHUNKS.has(type)) ranges.push([pos, end]);
    if (type === 'IEND') return joinRanges(bytes, ranges); // anything appended after it goes too
    pos = end;
  }
  return null;
}

// --- WebP: a RIFF container of chunks; VP8X's flags announce the optional ones. ---

/** Chunks that make up the picture or its animation, and the colour profile; EXIF, XMP and unknown ones go. */
const WEBP_KEPT_CHUNKS: ReadonlySet<string> = new Set(['VP8X', 'VP8 ', 'VP8L', 'ALPH', 'ANIM', 'ANMF', 'ICCP']);
/** VP8X flag bits announcing EXIF and XMP chunks; cleared once those are gone. */
const VP8X_EXIF_AND_XMP = 0x08 | 0x04;

function stripWebp(bytes: Buffer): Uint8Array | null {
  if (!isWebp(bytes)) return null;
  const ranges: Ranges = [[0, 12]];
  // Trailing bytes after the RIFF size are dropped; a chunk past it throws RangeError (null, above).
  for (const { type, start, end } of webpChunks(bytes)) if (WEBP_KEPT_CHUNKS.has(type)) ranges.push([start, end]);
  const out = joinRanges(bytes, ranges);
  const view = new DataView(out.buffer);
  view.setUint32(4, out.byteLength - 8, true);
  if (startsWith(Buffer.from(out.buffer), 12, 'VP8X')) view.setUint8(20, view.getUint8(20) & ~VP8X_EXIF_AND_XMP);
  return out;
}

// --- GIF: header and colour table, then extension and image blocks up to the trailer. ---

const GIF_EXTENSION = 0x21;
const GIF_IMAGE = 0x2c;
const GIF_TRAILER = 0x3b;
/** Extensions that affect display: graphic control (frame timing, transparency) and plain text. */
const GIF_KEPT_EXTENSIONS: ReadonlySet<number> = new Set([0xf9, 0x01]);
/** Application extensions that affect display: the loop count, and the ICC profile. XMP and others go. */
const GIF_KEPT_APPLICATIONS: ReadonlySet<string> = new Set(['NETSCAPE2.0', 'ANIMEXTS1.0', 'ICCRGBG1012']);

/** Size of a colour table announced by a packed-fields byte (0 when there is none). */
const gifColourTableBytes = (packed: number) => (packed & 0x80 ? 3 * 2 ** ((packed & 0x07) + 1) : 0);

/** Where a run of data sub-blocks starting at `from` ends, after its zero-length terminator. */
function endOfSubBlocks(bytes: Buffer, from: number): number {
  let pos = from;
  for (let length = bytes.readUInt8(pos); length !== 0; length = bytes.readUInt8(pos)) pos += 1 + length;
  return pos + 1;
}

function stripGif(bytes: Buffer): Uint8Array | null {
  if (!startsWith(bytes, 0, 'GIF87a') && !startsWith(bytes, 0, 'GIF89a')) return null;
  const headerEnd = 13 + gifColourTableBytes(bytes.readUInt8(10)); // header, screen descriptor, global table
  const ranges: Ranges = [[0, headerEnd]];
  let pos = headerEnd;
  for (;;) {
    // No trailer: a truncated file that decoders still show; keep what there is.
    if (pos === bytes.length) return joinRanges(bytes, ranges);
    const block = bytes.readUInt8(pos);
    if (block === GIF_TRAILER) {
      ranges.push([pos, pos + 1]);
      return joinRanges(bytes, ranges);
    }
    if (block === GIF_IMAGE) {
      const dataStart = pos + 10 + gifColourTableBytes(bytes.readUInt8(pos + 9)) + 1; // descriptor, local table, LZW code size
      const end = endOfSubBlocks(bytes, dataStart);
      ranges.push([pos, end]);
      pos = end;
    } else if (block === GIF_EXTENSION) {
      const label = bytes.readUInt8(pos + 1);
      const end = endOfSubBlocks(bytes, pos + 2);
      // An application extension's first sub-block is its 11-byte identifier and authentication code.
      const kept = GIF_KEPT_EXTENSIONS.has(label) || (label === 0xff && GIF_KEPT_APPLICATIONS.has(bytes.toString('latin1', pos + 3, pos + 14)));
      if (kept) ranges.push([pos, end]);
      pos = end;
    } else {
      return null;
    }
  }
}
