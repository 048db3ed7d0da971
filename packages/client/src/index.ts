// @kocmoc/client: an urql client for the Kocmoc API, with graphql-ws subscriptions, access-token
// refresh, and a Graphcache that normalises every entity by id and pages every connection.
import { Client, fetchExchange, subscriptionExchange, type Exchange } from '@urql/core';
import { cacheExchange, type CacheExchangeOpts, type KeyingConfig, type ResolverConfig } from '@urql/exchange-graphcache';
import { relayPagination } from '@urql/exchange-graphcache/extras';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { CONNECTION_FIELDS, EMBEDDED_TYPES } from './cache-config.ts';

export { CONNECTION_FIELDS, EMBEDDED_TYPES } from './cache-config.ts';

/** Graphcache `keys`: types without an id are embedded in their parent (no "no key" warning). */
export const graphcacheKeys: KeyingConfig = Object.fromEntries(EMBEDDED_TYPES.map((type) => [type, () => null]));

/** Graphcache `resolvers`: relayPagination on every connection, so pages merge both ways. */
export const graphcacheResolvers: ResolverConfig = Object.fromEntries(
  Object.entries(CONNECTION_FIELDS).map(([type, fields]) => [type, Object.fromEntries(Object.keys(fields).map((field) => [field, relayPagination()]))]),
);

export interface KocmocClientOptions {
  /** The API's GraphQL endpoint, `https://<host>/graphql`. */
  url: string;
  /** The graphql-ws endpoint; default: `url` with ws(s):. */
  wsUrl?: string;
  /** The current access token, or null when signed out. */
  getAccessToken(): string | null | Promise<string | null>;
  /**
   * Called when the API answers UNAUTHENTICATED with reason TOKEN_EXPIRED: refresh (the `refreshToken`
   * mutation) and answer the new access token; the request is then sent once more. Null: signed out.
   */
  refreshAccessToken?(): Promise<string | null>;
  /** Another fetch (tests, React Native). */
  fetch?: typeof fetch;
  /** Another WebSocket implementation (Node before 22: `ws`). */
  webSocketImpl?: unknown;
  /** More Graphcache options (updates, optimistic); keys and resolvers above are merged in. */
  cache?: Partial<CacheExchangeOpts>;
}

const hasExpiredToken = async (response: Response) => {
  if (!response.headers.get('content-type')?.includes('json')) return false;
  const body = (await response.clone().json()) as { errors?: Array<{ extensions?: { reason?: string } }> };
  return body.errors?.some((error) => error.extensions?.reason === 'TOKEN_EXPIRED') ?? false;
};

/** A fetch that sends the access token and, once per request, refreshes an expired one and retries. */
function authorizedFetch(options: KocmocClientOptions): typeof fetch {
  const base = options.fetch ?? fetch;
  const send = (input: RequestInfo | URL, init: RequestInit | undefined, token: string | null) => {
    const headers = new Headers(init?.headers);
    if (token) headers.set('authorization', `Bearer ${token}`);
    return base(input, { ...init, headers });
  };
  return async (input, init) => {
    const response = await send(input, init, await options.getAccessToken());
    if (!options.refreshAccessToken || !(await hasExpiredToken(response))) return response;
    const fresh = await options.refreshAccessToken();
    return fresh ? send(input, init, fresh) : response;
  };
}

/** The graphql-ws client: lazy, authenticated with the token of the moment at each (re)connect. */
export function createKocmocWsClient(options: KocmocClientOptions): WsClient {
  return createWsClient({
    url: options.wsUrl ?? options.url.replace(/^http/, 'ws'),
    lazy: true,
    connectionParams: async () => {
      const token = await options.getAccessToken();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    ...(options.webSocketImpl ? { webSocketImpl: options.webSocketImpl } : {}),
  });
}

/** An urql Client for the API: Graphcache (keys, relayPagination), HTTP with token refresh, graphql-ws. */
export function createKocmocClient(options: KocmocClientOptions): Client {
  // Created at the first subscription: a client that only queries needs no WebSocket (Node before 22 has none).
  let ws: WsClient | undefined;
  const socket = () => (ws ??= createKocmocWsClient(options));
  const { keys, resolvers, ...cache } = options.cache ?? {};
  const exchanges: Exchange[] = [
    cacheExchange({ ...cache, keys: { ...graphcacheKeys, ...keys }, resolvers: { ...graphcacheResolvers, ...resolvers } }),
    fetchExchange,
    subscriptionExchange({
      forwardSubscription: (request) => ({
        subscribe: (sink) => ({ unsubscribe: socket().subscribe({ ...request, query: request.query ?? '' }, sink) }),
      }),
    }),
  ];
  return new Client({ url: options.url, exchanges, fetch: authorizedFetch(options), requestPolicy: 'cache-first' });
}

export { graphql } from './graphql.ts';
export * from './documents.ts';
