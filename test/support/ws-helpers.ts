// Real graphql-ws clients over a real port.
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface Connection {
  client: Client;
  /** Resolves with the close event's code once the socket closes. */
  closed: Promise<number>;
  /** Resolves once the server acknowledged `connection_init`. */
  connected: Promise<void>;
  dispose(): Promise<void>;
}

export function connect(url: string, token: string | null, connectionParams?: Record<string, unknown>): Connection {
  let resolveClosed!: (code: number) => void;
  let resolveConnected!: () => void;
  const closed = new Promise<number>((resolve) => (resolveClosed = resolve));
  const connected = new Promise<void>((resolve) => (resolveConnected = resolve));
  const client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: connectionParams ?? (token ? { authorization: `Bearer ${token}` } : {}),
    on: {
      connected: () => resolveConnected(),
      closed: (event) => resolveClosed((event as { code: number }).code),
    },
    onNonLazyError: () => {},
  });
  return { client, closed, connected, dispose: () => Promise.resolve(client.dispose()) };
}

export interface Subscription<T = any> {
  /** Every result so far. */
  results: Array<{ data?: T; errors?: any[] }>;
  /** The next result not yet taken, waiting up to `timeoutMs`. */
  next(timeoutMs?: number): Promise<{ data?: T; errors?: any[] }>;
  /** Asserts nothing more arrives within `ms`. */
  nothingWithin(ms: number): Promise<boolean>;
  completed: Promise<void>;
  /** How the server ended it: an `error` message, or a `complete` (which a client takes for "no more events"). */
  ending: Promise<'error' | 'complete'>;
  unsubscribe(): void;
}

export function subscribe<T = any>(connection: Connection, query: string, variables: Record<string, unknown> = {}): Subscription<T> {
  const results: Array<{ data?: T; errors?: any[] }> = [];
  let taken = 0;
  let wake: (() => void) | undefined;
  let resolveCompleted!: () => void;
  const completed = new Promise<void>((resolve) => (resolveCompleted = resolve));
  let resolveEnding!: (how: 'error' | 'complete') => void;
  const ending = new Promise<'error' | 'complete'>((resolve) => (resolveEnding = resolve));
  const unsubscribe = connection.client.subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        results.push(value as { data?: T; errors?: any[] });
        wake?.();
      },
      error: (error) => {
        results.push({ errors: Array.isArray(error) ? error : [error] });
        wake?.();
        resolveEnding('error');
        resolveCompleted();
      },
      complete: () => {
        resolveEnding('complete');
        resolveCompleted();
      },
    },
  );
  return {
    results,
    completed,
    ending,
    unsubscribe,
    async next(timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (results.length <= taken) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no event within ${timeoutMs} ms (got ${results.length})`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, left);
        });
      }
      return results[taken++]!;
    },
    async nothingWithin(ms) {
      const before = results.length;
      await new Promise((resolve) => setTimeout(resolve, ms));
      return results.length === before;
    },
  };
}

/** Subscriptions go live asynchronously on the server; tests give them this long first. */
export const settle = (ms = 300) => new Promise((resolve) => setTimeout(resolve, ms));

/** The connections a test file opens, closed together by `closeAll` in its afterAll. */
export function openConnections() {
  const open: Connection[] = [];
  return {
    connect(url: string, token: string | null, connectionParams?: Record<string, unknown>): Connection {
      const connection = connect(url, token, connectionParams);
      open.push(connection);
      return connection;
    },
    async closeAll() {
      await Promise.all(open.splice(0).map((connection) => connection.dispose()));
    },
  };
}
