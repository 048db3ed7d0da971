// Short-lived download links (`Attachment.url`, `thumbnailUrl`) for places that cannot send an
// Authorization header, like <img src> and <audio src>. A link names its viewer and is signed
// with HMAC-SHA256, so it cannot be altered or reused for another file, variant or person; the
// download still checks that viewer's access, so leaving the chat ends what a link can fetch.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { Config } from '../env.ts';

/** An upload, its thumbnail, or a user's data export (DataExport, served under /exports). */
export type FileVariant = 'original' | 'thumbnail' | 'export';

export interface FileLink {
  attachmentId: string;
  variant: FileVariant;
  viewerId: string;
  /** Unix seconds after which the link stops working. */
  expires: number;
}

export type LinkCheck = { ok: true; link: FileLink } | { ok: false; reason: 'expired' | 'invalid' };

const keys = new Map<string, Buffer>();

/** The HMAC key, derived from JWT_SECRET (a secret we already have) for this one purpose. */
function signingKey(secret: string): Buffer {
  let key = keys.get(secret);
  if (!key) keys.set(secret, (key = Buffer.from(hkdfSync('sha256', secret, '', 'kocmoc file links v1', 32))));
  return key;
}

function signature(secret: string, { attachmentId, variant, viewerId, expires }: FileLink): Buffer {
  // Newline-separated: none of the parts (ids, a variant name, a number) can contain one.
  return createHmac('sha256', signingKey(secret)).update(`${attachmentId}\n${variant}\n${viewerId}\n${expires}`).digest();
}

/** The download path of a file, e.g. `/files/<id>`, `/files/<id>/thumbnail` or `/exports/<id>`. */
export const filePath = (attachmentId: string, variant: FileVariant) =>
  variant === 'export' ? `/exports/${encodeURIComponent(attachmentId)}` : `/files/${encodeURIComponent(attachmentId)}${variant === 'thumbnail' ? '/thumbnail' : ''}`;

/**
 * A relative URL (`/files/<id>?u=…&expires=…&sig=…`) that works without Authorization for at least
 * `ttlMs` and at most 1.25 × `ttlMs`. The expiry is rounded up to a step of a quarter of the TTL, so
 * every query within one step hands a viewer the same URL for a file and browsers reuse what they
 * cached instead of downloading it again.
 */
export function signFileUrl(secret: string, link: Omit<FileLink, 'expires'>, ttlMs: number, now = Date.now()): string {
  const stepMs = Math.max(1_000, Math.floor(ttlMs / 4));
  return signedFileUrl(secret, { ...link, expires: Math.ceil(Math.ceil((now + ttlMs) / stepMs) * stepMs / 1_000) });
}

/** A link that works until `link.expires` (Unix seconds), for a file that itself lives only that long. */
export function signedFileUrl(secret: string, signed: FileLink): string {
  const query = new URLSearchParams({
    u: signed.viewerId,
    expires: String(signed.expires),
    sig: signature(secret, signed).toString('base64url'),
  });
  return `${filePath(signed.attachmentId, signed.variant)}?${query}`;
}

/** `viewerId`'s link to a file under `origin`, with the configured secret and FILE_URL_TTL. */
export const viewerFileUrl = (config: Pick<Config, 'auth' | 'files'>, origin: string, link: Omit<FileLink, 'expires'>) =>
  new URL(signFileUrl(config.auth.jwtSecret, link, config.files.urlTtlMs), origin).href;

/** Checks a link's query (`u`, `expires`, `sig`) for this file and variant, in constant time. */
export function checkFileUrl(
  secret: string,
  attachmentId: string,
  variant: FileVariant,
  query: URLSearchParams,
  now = Date.now(),
): LinkCheck {
  const viewerId = query.get('u');
  const expiresText = query.get('expires');
  const given = Buffer.from(query.get('sig') ?? '', 'base64url');
  if (!viewerId || !expiresText || !/^\d{1,12}$/.test(expiresText)) return { ok: false, reason: 'invalid' };
  const link: FileLink = { attachmentId, variant, viewerId, expires: Number(expiresText) };
  const expected = signature(secret, link);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'invalid' };
  // Checked after the signature, so an altered `expires` reads as invalid rather than as expired.
  if (now >= link.expires * 1_000) return { ok: false, reason: 'expired' };
  return { ok: true, link };
}
