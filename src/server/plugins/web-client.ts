// The web client at GET / (built from web/ into web/dist/ by `npm run build`, which `npm install`
// runs): its page, script, stylesheet, icon and service worker, from this server only. Its pages
// carry a strict Content-Security-Policy: scripts and styles of this origin and nothing inline,
// which is what keeps the refresh token the client stores out of reach of injected code.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'graphql-yoga';
import { assetResponse, CONTENT_TYPES, prepareAsset, type StaticAsset } from '../static-assets.ts';

/** Where `npm run build` puts the client. */
export const WEB_CLIENT_DIR = fileURLToPath(new URL('../../../web/dist/', import.meta.url));

export const WEB_CLIENT_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // Thumbnails and downloads come from /files/ here; blob: and data: for previews.
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  // 'self' covers the graphql-ws socket of this origin too.
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface WebClientOptions {
  /** The built client. Default {@link WEB_CLIENT_DIR}. */
  dir?: string;
}

type Files = Map<string, StaticAsset>;

/** Every file of the build, by URL path (`/` is index.html). Read once, on the first request. */
async function loadFiles(dir: string): Promise<Files> {
  const names = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => entry.name);
  const files: Files = new Map();
  for (const name of names) {
    const type = CONTENT_TYPES[path.extname(name)];
    if (type) files.set(`/${name}`, await prepareAsset(await readFile(path.join(dir, name)), type));
  }
  const index = files.get('/index.html');
  if (index) files.set('/', index);
  return files;
}

export function useWebClient(options: WebClientOptions = {}): Plugin {
  const dir = options.dir ?? WEB_CLIENT_DIR;
  let files: Promise<Files> | undefined;
  const load = () => {
    files ??= loadFiles(dir).catch(() => new Map());
    return files;
  };

  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (request.method !== 'GET' && request.method !== 'HEAD') return;
      // Only names of the build (one level, no dots in folders): everything else is the API's.
      if (url.pathname !== '/' && !/^\/[\w.-]+$/.test(url.pathname)) return;
      return load().then((loaded) => {
        if (loaded.size === 0) files = undefined; // not built yet: look again next time
        const asset = loaded.get(url.pathname);
        if (asset) {
          const page = asset.contentType.startsWith('text/html');
          // Names are not content-hashed: revalidate (ETag) on every load, so a rebuild shows at once.
          const headers: Record<string, string> = { 'cache-control': 'no-cache', 'referrer-policy': 'no-referrer' };
          if (page) Object.assign(headers, { 'content-security-policy': WEB_CLIENT_CSP, 'x-frame-options': 'DENY' });
          return endResponse(assetResponse(fetchAPI, request, asset, headers));
        }
        if (url.pathname === '/' && loaded.size === 0) {
          endResponse(
            new fetchAPI.Response('The web client is not built yet: run `npm run build` (npm install does it), then reload.\n', {
              status: 503,
              headers: { 'content-type': 'text/plain; charset=utf-8' },
            }),
          );
        }
      });
    },
  };
}
