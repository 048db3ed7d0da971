// Subscriptions over graphql-ws. Each one here survives a dropped socket: it subscribes again, with
// its variables asked for afresh (so a chat's messageEvents resumes with `sinceSeq` = the newest
// message it has, and the server replays what was missed, no gaps, no repeats). The graphql-ws
// client is used directly rather than through urql's subscription exchange, because that exchange
// would resend the variables of the first subscribe after each reconnect.
import { stringifyDocument, type AnyVariables, type TypedDocumentNode } from '@urql/core';
import { createClient, type Client } from 'graphql-ws';
import { accessToken, tokenRefused } from './session.ts';
import { ApiError } from './transport.ts';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting';

let socket: Client | undefined;
let state: ConnectionState = 'idle';
let active = 0;
let everConnected = false;
const stateListeners = new Set<(state: ConnectionState) => void>();

function setState(next: ConnectionState) {
  if (next === state) return;
  state = next;
  for (const listener of stateListeners) listener(state);
}

/** Runs `fn` once the socket is connected (now, if it is). */
function whenConnected(fn: () => void) {
  if (state === 'connected') return fn();
  const stop = onConnectionState((next) => {
    if (next !== 'connected') return;
    queueMicrotask(() => stop());
    fn();
  });
}

export function onConnectionState(listener: (state: ConnectionState) => void): () => void {
  stateListeners.add(listener);
  listener(state);
  return () => stateListeners.delete(listener);
}

function client(): Client {
  socket ??= createClient({
    url: new URL('/graphql', location.href).href.replace(/^http/, 'ws'),
    lazy: true,
    // Reconnecting is ours (below), so each subscription can start again from where it was.
    retryAttempts: 0,
    keepAlive: 10_000,
    // Browsers cannot put headers on a WebSocket upgrade: the token goes in connection_init.
    connectionParams: async () => ({ authorization: `Bearer ${await accessToken()}` }),
    on: {
      connecting: () => setState(everConnected ? 'reconnecting' : 'connecting'),
      connected: () => {
        everConnected = true;
        setState('connected');
      },
      closed: () => setState(active > 0 ? 'reconnecting' : 'idle'),
    },
  });
  return socket;
}

/** Drops the socket (signing out): subscriptions still running will reconnect with the next session. */
export function closeSocket() {
  socket?.terminate();
  socket = undefined;
  everConnected = false;
  setState('idle');
}

export interface LiveOptions<Variables> {
  /** Asked at every (re)subscribe. */
  variables: () => Variables;
  /** Called before each subscribe after the first: fetch what a missing event would have changed. */
  onResume?: () => void;
  /** A GraphQL error the subscription cannot recover from (e.g. NOT_FOUND). */
  onError?: (error: ApiError) => void;
}

const RETRY_MS = [500, 1_000, 2_000, 4_000, 5_000];

/** Runs `document` until the returned function is called, resubscribing after any drop. */
export function live<Data, Variables extends AnyVariables>(
  document: TypedDocumentNode<Data, Variables>,
  onData: (data: Data) => void,
  options: LiveOptions<Variables>,
): () => void {
  let stopped = false;
  let attempt = 0;
  let unsubscribe = () => {};
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  active += 1;

  const retry = () => {
    if (stopped) return;
    setState('reconnecting');
    const delay = RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]! * (0.75 + Math.random() / 2);
    attempt += 1;
    retryTimer = setTimeout(start, delay);
  };

  const start = () => {
    if (stopped) return;
    // Once the new socket is up, the caller fetches what a lost event would have changed.
    if (attempt > 0 && options.onResume) whenConnected(options.onResume);
    unsubscribe = client().subscribe<Data>(
      { query: stringifyDocument(document), variables: options.variables() as Record<string, unknown> },
      {
        next: (result) => {
          attempt = 0;
          if (result.data) onData(result.data);
        },
        error: (error) => {
          if (!Array.isArray(error)) return retry(); // the socket closed or could not open
          const first = error[0] as { message?: string; extensions?: { code?: string } } | undefined;
          const code = first?.extensions?.code;
          if (code === 'UNAUTHENTICATED') {
            // A socket whose access token expired keeps its subscriptions but refuses new ones:
            // refresh, then a new socket (the others resubscribe on it too).
            void tokenRefused().then(() => {
              socket?.terminate();
              retry();
            }, retry);
            return;
          }
          options.onError?.(new ApiError(first?.message ?? 'The live connection failed.', code));
        },
        // The server ended it (it is shutting down): start again on the next server.
        complete: retry,
      },
    );
  };

  start();
  return () => {
    stopped = true;
    active -= 1;
    clearTimeout(retryTimer);
    unsubscribe();
  };
}
