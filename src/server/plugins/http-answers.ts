// What HTTP adds to a GraphQL answer on /graphql: its cache policy (authenticated answers are never
// stored; an unauthenticated GET gets an ETag and is revalidated with If-None-Match), and
// compression (brotli or gzip) when it is over 1 KiB and the client accepts it. Streamed answers
// (multipart/mixed, text/event-stream) keep their parts flowing: they are not compressed.
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { brotliCompress, constants as zlib, gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';

const brotliAsync = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/** Smaller answers fit a packet or two: compressing them costs more than it saves. */
export const COMPRESSION_MIN_BYTES = 1024;
/**
 * Brotli quality 5 compresses a 75 KB introspection about as well as gzip -9 in a fraction of the
 * time of quality 11 (brotli's default, meant for assets compressed once).
 */
const BROTLI_QUALITY = 5;

const JSON_ANSWER = /^application\/(graphql-response\+)?json\b/i;

type Encoding = 'br' | 'gzip';

/** The client's preferred encoding of ours (brotli first at equal weight), or none. */
export function acceptedEncoding(header: string | null): Encoding | undefined {
  if (!header) return undefined;
  const weights = new Map<string, number>();
  for (const entry of header.split(',')) {
    const [name, ...params] = entry.trim().toLowerCase().split(';');
    const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined);
    weights.set(name!, q === undefined ? 1 : Number(q));
  }
  const weightOf = (encoding: Encoding) => weights.get(encoding) ?? weights.get('*') ?? 0;
  const best = (['br', 'gzip'] as const).filter((encoding) => weightOf(encoding) > 0).sort((a, b) => weightOf(b) - weightOf(a));
  return best[0];
}

const compress = (body: Uint8Array, encoding: Encoding) =>
  encoding === 'br' ? brotliAsync(body, { params: { [zlib.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY } }) : gzipAsync(body);

const isAuthenticated = (request: Request) => request.headers.has('authorization') || request.headers.has('x-admin-token');

/** An unauthenticated GET whose answer has no errors: the same URL gives the same answer to anyone. */
function isCacheable(request: Request, status: number, body: Uint8Array): boolean {
  if (request.method !== 'GET' || status !== 200 || isAuthenticated(request)) return false;
  try {
    return !('errors' in (JSON.parse(Buffer.from(body).toString('utf8')) as object));
  } catch {
    return false;
  }
}

const matches = (ifNoneMatch: string | null, etag: string) =>
  ifNoneMatch !== null && ifNoneMatch.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*');

/** Register last: it replaces the answer, so the headers other plugins set must be there already. */
export function useHttpAnswers(graphqlEndpoint: string): Plugin {
  return {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      if (new URL(request.url).pathname !== graphqlEndpoint) return;
      const headers = response.headers;
      if (isAuthenticated(request)) headers.set('cache-control', 'private, no-store');
      if (!response.body || !JSON_ANSWER.test(headers.get('content-type') ?? '') || headers.has('content-encoding')) return;
      // A JSON answer is complete in memory already; reading it does not hold back a stream.
      let body = new Uint8Array(await response.arrayBuffer());
      // Copied one by one: a ponyfill Headers built from another keeps its names' case, and then
      // get('content-type') misses (in-process callers of yoga.fetch saw no content type).
      const answerHeaders = new fetchAPI.Headers();
      headers.forEach((value, name) => answerHeaders.append(name, value));
      answerHeaders.append('vary', 'accept-encoding');
      if (isCacheable(request, response.status, body)) {
        // Weak: the same answer compressed or not is the same entity to the client.
        const etag = `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
        answerHeaders.set('etag', etag);
        answerHeaders.set('cache-control', 'public, no-cache');
        answerHeaders.append('vary', 'authorization');
        if (matches(request.headers.get('if-none-match'), etag)) {
          answerHeaders.delete('content-type');
          answerHeaders.delete('content-length');
          setResponse(new fetchAPI.Response(null, { status: 304, headers: answerHeaders }));
          return;
        }
      }
      const encoding = body.byteLength > COMPRESSION_MIN_BYTES ? acceptedEncoding(request.headers.get('accept-encoding')) : undefined;
      if (encoding) {
        body = new Uint8Array(await compress(body, encoding));
        answerHeaders.set('content-encoding', encoding);
      }
      answerHeaders.set('content-length', String(body.byteLength));
      setResponse(new fetchAPI.Response(body, { status: response.status, statusText: response.statusText, headers: answerHeaders }));
    },
  };
}
