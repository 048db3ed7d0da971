// Files this server hands to browsers (the web client, GraphiQL's bundle): held in memory with a
// content hash for ETag revalidation and a gzipped copy for clients that accept it.
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);

export interface StaticAsset {
  body: Buffer;
  /** Only kept when it is smaller. */
  gzipped?: Buffer;
  contentType: string;
  etag: string;
}

/** Content types by file extension, for what the web client's build and GraphiQL serve. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

export async function prepareAsset(content: string | Buffer, contentType: string): Promise<StaticAsset> {
  const body = typeof content === 'string' ? Buffer.from(content) : content;
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  // Images are compressed already.
  const gzipped = contentType.startsWith('image/') && !contentType.startsWith('image/svg') ? undefined : await gzipAsync(body, { level: 9 });
  return { body, gzipped: gzipped && gzipped.length < body.length ? gzipped : undefined, contentType, etag };
}

/**
 * A 200 (or 304 when `If-None-Match` matches) for `asset`, gzipped if the client accepts it, with
 * `headers` added (cache policy, CSP). HEAD gets the headers only.
 */
export function assetResponse(
  fetchAPI: { Response: typeof Response },
  request: Request,
  asset: StaticAsset,
  headers: Record<string, string>,
): Response {
  const common: Record<string, string> = { etag: asset.etag, vary: 'accept-encoding', 'x-content-type-options': 'nosniff', ...headers };
  const ifNoneMatch = request.headers.get('if-none-match');
  if (ifNoneMatch && ifNoneMatch.split(',').some((tag) => tag.trim() === asset.etag)) {
    return new fetchAPI.Response(null, { status: 304, headers: common });
  }
  const useGzip = !!asset.gzipped && /\bgzip\b/.test(request.headers.get('accept-encoding') ?? '');
  const body = useGzip ? asset.gzipped! : asset.body;
  const responseHeaders = {
    ...common,
    'content-type': asset.contentType,
    'content-length': String(body.length),
    ...(useGzip ? { 'content-encoding': 'gzip' } : {}),
  };
  return new fetchAPI.Response(request.method === 'HEAD' ? null : new Uint8Array(body), { status: 200, headers: responseHeaders });
}
