// File names come from clients: they are shown to other users and end up in a response header,
// so they are cleaned once on upload and encoded again for every download.

/** Longest stored name, in UTF-8 bytes (what most file systems allow). */
export const FILE_NAME_MAX_BYTES = 255;
const FALLBACK_NAME = 'file';
/** Control characters, and bidirectional overrides that can disguise `gpj.exe` as `exe.jpg`. */
const UNSAFE_CHARACTERS = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
/** Lone surrogates (not UTF-8 encodable; encodeURIComponent throws on them). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const wellFormed = (value: string) => value.replace(LONE_SURROGATE, '\ufffd');

/** The name to store: its last path segment, without control characters, at most FILE_NAME_MAX_BYTES. */
export function sanitizeFileName(name: string | null | undefined): string {
  const lastSegment = wellFormed(name ?? '').normalize('NFC').split(/[/\\]/).pop() ?? '';
  const cleaned = lastSegment
    .replace(UNSAFE_CHARACTERS, '')
    // No hidden files, no `..`, and no trailing dots or spaces (Windows drops them).
    .replace(/^[\s.]+/u, '')
    .replace(/[\s.]+$/u, '');
  return truncateKeepingExtension(cleaned, FILE_NAME_MAX_BYTES) || FALLBACK_NAME;
}

function truncateKeepingExtension(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
  let stem = [...name.slice(0, name.length - extension.length)];
  // Whole code points only, so a cut never leaves half a surrogate pair.
  while (stem.length > 0 && Buffer.byteLength(stem.join('') + extension) > maxBytes) stem.pop();
  return stem.join('').trimEnd() + extension;
}

/**
 * An RFC 6266 Content-Disposition value that cannot break out of the header: an ASCII-only quoted
 * `filename` for old clients and the exact name percent-encoded in `filename*` (RFC 8187).
 */
export function contentDisposition(disposition: 'inline' | 'attachment', name: string): string {
  const ascii =
    name
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      // Printable ASCII only, and none of `"` and `\` (quoting) or `%` (some clients decode it).
      .replace(/[^\x20-\x7e]|["\\%]/g, '_')
      .trim() || FALLBACK_NAME;
  return `${disposition}; filename="${ascii}"; filename*=UTF-8''${encodeRfc8187(wellFormed(name))}`;
}

/** Percent-encodes everything but RFC 8187's attr-char set. */
function encodeRfc8187(value: string): string {
  return encodeURIComponent(value).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
