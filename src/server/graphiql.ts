// GraphiQL at GET /graphql, working offline: its bundle (@graphql-yoga/render-graphiql) is served
// from /graphiql/ on this server instead of a CDN, under a CSP that allows nothing from another
// origin. Subscriptions go over SSE (graphql-yoga's GraphQL over HTTP), so the Authorization header
// typed in GraphiQL's headers editor travels with them too (a browser cannot set headers on a
// WebSocket upgrade). Default tabs show how to sign in and where the token goes.
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';
import { assetResponse, CONTENT_TYPES, prepareAsset, type StaticAsset } from './static-assets.ts';

const ASSET_PREFIX = '/graphiql/';

/**
 * Everything the page loads, from this origin only. GraphiQL's editor (Monaco) adds style elements
 * and attributes at run time, hence 'unsafe-inline' for styles (scripts stay 'self' only); its
 * language workers are same-origin files.
 */
export const GRAPHIQL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SIGN_IN_TAB = `# Welcome to Kocmoc's GraphiQL.
#
# 1. Run Register (a new account) or SignIn:
#    press ▶ and pick the operation.
# 2. Copy accessToken from the result into the
#    Headers tab (below) of the other tabs:
#      { "Authorization": "Bearer <accessToken>" }
# 3. Their queries, mutations and subscriptions
#    (over Server-Sent Events, which carry that
#    header) then run as you.
# An access token lasts 15 minutes; RefreshToken
# trades your refreshToken for a new pair.

mutation Register {
  register(input: { email: "ada@example.com", username: "ada", password: "correct horse battery" }) {
    accessToken
    refreshToken
    accessTokenExpiresAt
    user { id username }
  }
}

mutation SignIn {
  login(input: { login: "ada", password: "correct horse battery" }) {
    accessToken
    refreshToken
    accessTokenExpiresAt
    user { id username }
  }
}

mutation RefreshToken {
  refreshToken(refreshToken: "<refreshToken>") {
    accessToken
    refreshToken
  }
}
`;

const MY_CHATS_TAB = `# Needs the Authorization header (see the first tab).
query MyChats {
  me { id username displayName }
  chats(first: 20) {
    edges {
      node {
        id
        kind
        title
        unreadCount
        lastMessage { seq text sender { username } }
      }
    }
  }
}
`;

const LIVE_TAB = `# Needs the Authorization header (see the first tab). Runs until you stop it;
# send a message from another tab or the web client (/) to see it arrive.
subscription LiveMessages {
  messageEvents {
    type
    seq
    chatId
    message { id text sender { username } createdAt }
  }
}
`;

const HEADERS_TEMPLATE = JSON.stringify({ Authorization: 'Bearer <accessToken>' }, null, 2);

/** createYoga's `graphiql` option. */
export const graphiqlOptions: GraphiQLOptions = {
  // Rendered as HTML beside the logo: the way back to the web client.
  title: 'Kocmoc GraphiQL · <a href="/" style="color: inherit">web client</a>',
  subscriptionsProtocol: 'SSE',
  defaultTabs: [{ query: SIGN_IN_TAB }, { query: MY_CHATS_TAB, headers: HEADERS_TEMPLATE }, { query: LIVE_TAB, headers: HEADERS_TEMPLATE }],
};

/** Options the page hands to GraphiQL; the fetcher is built in the browser. */
type PageOptions = Omit<GraphiQLOptions, 'fetcher'>;

/** createYoga's `renderGraphiQL`: a page of same-origin scripts, no inline code. */
export function renderGraphiQL(options: PageOptions): string {
  // Inert JSON for start.js; `<` escaped so no string in it can close the script element.
  const json = JSON.stringify(options).replaceAll('<', '\\u003c');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Kocmoc GraphiQL</title>
    <link rel="icon" href="${ASSET_PREFIX}favicon.ico" />
    <link rel="stylesheet" href="${ASSET_PREFIX}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root">Loading GraphiQL…</div>
    <script type="application/json" id="graphiql-options">${json}</script>
    <script src="${ASSET_PREFIX}environment.js"></script>
    <script src="${ASSET_PREFIX}graphiql.js"></script>
    <script src="${ASSET_PREFIX}start.js"></script>
  </body>
</html>
`;
}

const WORKERS = { editorWorkerService: 'editor-worker.js', json: 'json-worker.js', graphql: 'graphql-worker.js' } as const;

/** Before the bundle: where Monaco finds its language workers. */
const ENVIRONMENT_JS = `self.MonacoEnvironment = {
  globalAPI: false,
  getWorkerUrl: function (moduleId, label) {
    var workers = ${JSON.stringify(Object.fromEntries(Object.entries(WORKERS).map(([label, file]) => [label, ASSET_PREFIX + file])))};
    return workers[label] || workers.editorWorkerService;
  },
};
`;

/** After the bundle: render with the page's options. */
const START_JS = `YogaGraphiQL.renderYogaGraphiQL(
  document.getElementById('root'),
  JSON.parse(document.getElementById('graphiql-options').textContent),
);
`;

/** The bundle's files, loaded on the first request for one (9 MB of source that most runs never need). */
let assets: Promise<Map<string, StaticAsset>> | undefined;

function loadAssets(): Promise<Map<string, StaticAsset>> {
  assets ??= (async () => {
    const bundle = await import('@graphql-yoga/render-graphiql/graphiql');
    const favicon = Buffer.from(bundle.favicon.slice(bundle.favicon.indexOf(',') + 1), 'base64');
    const files: Array<[string, string | Buffer]> = [
      ['graphiql.js', bundle.js],
      ['graphiql.css', bundle.css],
      ['favicon.ico', favicon],
      ['environment.js', ENVIRONMENT_JS],
      ['start.js', START_JS],
      [WORKERS.editorWorkerService, bundle.editorWorkerService],
      [WORKERS.json, bundle.jsonWorker],
      [WORKERS.graphql, bundle.graphqlWorker],
    ];
    const prepared = await Promise.all(
      files.map(async ([name, content]) => [name, await prepareAsset(content, CONTENT_TYPES[name.slice(name.lastIndexOf('.'))]!)] as const),
    );
    return new Map(prepared);
  })();
  assets.catch(() => (assets = undefined)); // a failed load is retried on the next request
  return assets;
}

/**
 * Serves GraphiQL's files under /graphiql/ and puts the CSP on the GraphiQL page (which Yoga
 * renders with {@link renderGraphiQL} on GET /graphql for browsers).
 */
export function useGraphiQLAssets(): Plugin {
  return {
    onRequest({ request, url, endResponse, fetchAPI }) {
      if (!url.pathname.startsWith(ASSET_PREFIX) || (request.method !== 'GET' && request.method !== 'HEAD')) return;
      const name = url.pathname.slice(ASSET_PREFIX.length);
      return loadAssets().then((files) => {
        const asset = files.get(name);
        endResponse(
          asset
            ? assetResponse(fetchAPI, request, asset, { 'cache-control': 'public, max-age=3600', 'cross-origin-resource-policy': 'same-origin' })
            : new fetchAPI.Response('Not found', { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8' } }),
        );
      });
    },
    onResponse({ request, response }) {
      if (request.method === 'GET' && response.headers.get('content-type')?.startsWith('text/html') && new URL(request.url).pathname.startsWith('/graphql')) {
        response.headers.set('content-security-policy', GRAPHIQL_CSP);
        response.headers.set('x-content-type-options', 'nosniff');
        response.headers.set('referrer-policy', 'no-referrer');
      }
    },
  };
}
