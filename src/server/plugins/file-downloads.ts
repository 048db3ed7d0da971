// GET /files/:id, GET /files/:id/thumbnail and GET /exports/:id (a data export) on the API's own
// port, as a Yoga plugin. Access is the viewer's (Bearer token) or a signed link's (Attachment.url,
// exportMyData); anyone else gets 404, as if the file did not exist. Responses stream the decrypted bytes chunk by chunk, support a single Range
// (players seek in voice notes) and ETag revalidation, and are locked down so a hostile upload can
// neither be rendered as a page nor smuggle headers through its name.
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { authenticate } from '../../auth/authenticate.ts';
import type { Services } from '../../services.ts';
import { badUserInput, forbidden, internal, notFound, unauthenticated } from '../../errors.ts';
import type { Attachment } from '../../generated/prisma/client.ts';
import { requestIdOf } from './request-id.ts';
import { THUMBNAIL_MIME_TYPE } from '../../files/image-limits.ts';
import { findDownloadableAttachment } from '../../files/access.ts';
import { encryptedFileSize, readEncryptedFile } from '../../files/encrypted-files.ts';
import { contentDisposition } from '../../files/file-names.ts';
import { isInlineSafe } from '../../files/file-types.ts';
import { etagMatches, parseRange } from '../../files/ranges.ts';
import { checkFileUrl, type FileVariant } from '../../files/signed-urls.ts';
import { findDownloadableExport } from '../../users/data-export.ts';

type DownloadServices = Pick<Services, 'config' | 'prisma' | 'storage' | 'tokens' | 'sessions' | 'logger'>;

const FILE_ROUTE = /^\/files\/([A-Za-z0-9-]{1,64})(\/thumbnail)?\/?$/;
/** A user's data export (exportMyData): its owner's alone. */
const EXPORT_ROUTE = /^\/exports\/([A-Za-z0-9-]{1,64})\/?$/;

/** The id and variant a download path names, or null for a path that is not a download. */
function routeOf(pathname: string): { id: string; variant: FileVariant } | null {
  const file = FILE_ROUTE.exec(pathname);
  if (file) return { id: file[1]!, variant: file[2] ? 'thumbnail' : 'original' };
  const dataExport = EXPORT_ROUTE.exec(pathname);
  return dataExport ? { id: dataExport[1]!, variant: 'export' } : null;
}

/** Headers on every file response: never sniffed into HTML, never able to run script if opened directly. */
const LOCKED_DOWN = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; sandbox",
  'referrer-policy': 'no-referrer',
} as const;

type FetchAPI = { Response: typeof Response };

export function useFileDownloads(services: DownloadServices): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI, serverContext }) {
      const route = routeOf(url.pathname);
      if (!route || (request.method !== 'GET' && request.method !== 'HEAD')) return;
      // Over a Node server the raw response is here; a stream failing after the headers cuts it.
      const { res } = serverContext as { res?: ServerResponse };
      const cutConnection = () => res?.destroy();
      return serveFile(services, fetchAPI, request, url, route.id, route.variant, cutConnection).then(endResponse, (error: unknown) => {
        services.logger.child({ requestId: requestIdOf(request) }).error({ err: error, path: url.pathname }, 'file download failed');
        endResponse(errorResponse(fetchAPI, 500, internal()));
      });
    },
  };
}

async function serveFile(
  services: DownloadServices,
  fetchAPI: FetchAPI,
  request: Request,
  url: URL,
  attachmentId: string,
  variant: FileVariant,
  cutConnection: () => void,
): Promise<Response> {
  const viewer = await downloadingViewer(services, request, url, attachmentId, variant);
  if ('status' in viewer) return errorResponse(fetchAPI, viewer.status, viewer.error);
  const stored = await findDownload(services, attachmentId, variant, viewer.userId);
  if (!stored) return errorResponse(fetchAPI, 404, notFound('File'));
  const { size, etag } = stored;
  const headers: Record<string, string> = {
    ...LOCKED_DOWN,
    'content-type': stored.mimeType,
    'content-disposition': contentDisposition(isInlineSafe(stored.mimeType) ? 'inline' : 'attachment', stored.name),
    'accept-ranges': 'bytes',
    etag,
    'cache-control': cacheControl(viewer.linkExpires),
  };
  if (etagMatches(request.headers.get('if-none-match'), etag)) return new fetchAPI.Response(null, { status: 304, headers });

  // If-Range: the range only applies to the version the client has (strong comparison).
  const ifRange = request.headers.get('if-range');
  const range = ifRange === null || ifRange.trim() === etag ? parseRange(request.headers.get('range'), size) : { kind: 'whole' as const };
  if (range.kind === 'unsatisfiable') {
    return errorResponse(fetchAPI, 416, badUserInput('range', `The requested range is outside the file (${size} bytes).`), {
      'content-range': `bytes */${size}`,
    });
  }
  const bytes = range.kind === 'partial' ? range.range : { start: 0, end: size - 1 };
  headers['content-length'] = String(bytes.end - bytes.start + 1);
  if (range.kind === 'partial') headers['content-range'] = `bytes ${bytes.start}-${bytes.end}/${size}`;
  const status = range.kind === 'partial' ? 206 : 200;
  if (request.method === 'HEAD' || size === 0) return new fetchAPI.Response(null, { status, headers });

  const file = { storageKey: stored.storageKey, keyId: stored.keyId, size };
  const plaintext = await readEncryptedFile(services.storage, services.config.messageEncryption, file, bytes);
  const body = Readable.from(plaintext);
  // The headers are out by the time a chunk fails to open (tampered, truncated): the client must
  // see a broken download, not a short one, and the error must not go unhandled (pipe() leaves
  // source errors to the source).
  body.once('error', (error) => {
    services.logger.child({ requestId: requestIdOf(request) }).error({ err: error, attachmentId }, 'file download failed mid-stream');
    cutConnection();
  });
  return new fetchAPI.Response(body as unknown as BodyInit, { status, headers });
}

/** What a download serves. */
interface StoredDownload {
  storageKey: string;
  /** Keyring id it was sealed under. */
  keyId: string;
  /** Plaintext bytes. */
  size: number;
  mimeType: string;
  name: string;
  etag: string;
}

/** What `viewerId` downloads at this id and variant; null when there is nothing they may see. */
async function findDownload(services: DownloadServices, id: string, variant: FileVariant, viewerId: string): Promise<StoredDownload | null> {
  if (variant === 'export') {
    const found = await findDownloadableExport(services.prisma, id, viewerId);
    if (!found) return null;
    const name = `kocmoc-data-export-${found.createdAt.toISOString().slice(0, 10)}.json`;
    return { storageKey: found.storageKey, keyId: found.contentKeyId, size: found.size, mimeType: 'application/json', name, etag: `"${found.id}"` };
  }
  const attachment = await findDownloadableAttachment(services.prisma, id, viewerId);
  const stored = attachment && storedVariant(attachment, variant);
  if (!attachment || !stored) return null;
  // Empty uploads are refused, so a size of 0 is a row from before image sizes were recorded right
  // (they were saved as 0): read the size from the stored file instead of serving nothing.
  const size =
    variant === 'original' && attachment.size > 0 ? attachment.size : await encryptedFileSize(services.storage, stored.storageKey);
  if (size === null) throw new Error(`stored thumbnail "${stored.storageKey}" of attachment ${attachment.id} is missing`);
  return { ...stored, keyId: attachment.contentKeyId ?? '', size, etag: `"${attachment.id}${variant === 'thumbnail' ? '.thumb' : ''}"` };
}

/** What is served for a variant: the upload itself, or its WebP thumbnail (null when it has none). */
function storedVariant(attachment: Attachment, variant: FileVariant) {
  if (variant === 'original') return { storageKey: attachment.storageKey, mimeType: attachment.mimeType, name: attachment.name };
  if (!attachment.thumbnailKey) return null;
  return { storageKey: attachment.thumbnailKey, mimeType: THUMBNAIL_MIME_TYPE, name: `${attachment.name}.thumbnail.webp` };
}

/** `linkExpires`: the signed link's expiry (Unix seconds) when the viewer came with one. */
type ViewerOrRefusal = { userId: string; linkExpires?: number } | { status: 401 | 403; error: GraphQLError };

/** The viewer from `Authorization: Bearer` or, without that header, from a signed link's query. */
async function downloadingViewer(
  services: DownloadServices,
  request: Request,
  url: URL,
  attachmentId: string,
  variant: FileVariant,
): Promise<ViewerOrRefusal> {
  const authorization = request.headers.get('authorization');
  if (authorization) {
    const { viewer, authError } = await authenticate(services, authorization);
    return viewer ? { userId: viewer.userId } : { status: 401, error: authError ?? unauthenticated('SIGN_IN_REQUIRED') };
  }
  if (!url.searchParams.has('sig')) {
    return { status: 401, error: unauthenticated('SIGN_IN_REQUIRED', 'Send "Authorization: Bearer <accessToken>" or use a signed link (Attachment.url).') };
  }
  const check = checkFileUrl(services.config.auth.jwtSecret, attachmentId, variant, url.searchParams);
  if (check.ok) return { userId: check.link.viewerId, linkExpires: check.link.expires };
  return {
    status: 403,
    error: forbidden(check.reason === 'expired' ? 'This link has expired; query Attachment.url for a fresh one.' : 'This link is not valid.'),
  };
}

/**
 * The content of a file id never changes, and it is private. A signed link's URL stays the same for
 * a while (see signFileUrl), so what an <img src> fetched may be reused without asking until the
 * link expires; with an Authorization header the client revalidates each time (cheap: ETag).
 */
function cacheControl(linkExpires: number | undefined, now = Date.now()): string {
  if (linkExpires === undefined) return 'private, no-cache';
  return `private, max-age=${Math.max(0, Math.floor((linkExpires * 1_000 - now) / 1_000))}`;
}

/** The API's error shape, `{ "errors": [{ "message", "extensions": { "code" } }] }`, as a plain HTTP response. */
function errorResponse(fetchAPI: FetchAPI, status: number, error: GraphQLError, extraHeaders: Record<string, string> = {}): Response {
  const body = JSON.stringify({ errors: [{ message: error.message, extensions: error.extensions }] });
  return new fetchAPI.Response(body, {
    status,
    headers: { ...LOCKED_DOWN, 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extraHeaders },
  });
}
