// graphql-ws on the HTTP server's /graphql, through Yoga's envelop: same schema, context, plugins
// and error masking as HTTP.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { getOperationAST, type ExecutionArgs } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import { authenticate, type Authentication } from '../auth/authenticate.ts';
import type { Context } from '../context.ts';
import type { Services } from '../services.ts';
import { rateLimited, unauthenticated } from '../errors.ts';
import type { InFlight } from '../in-flight.ts';
import type { Logger } from '../logger.ts';
import { channels, type SessionsTopicEvent } from '../realtime/events.ts';
import { createAddressGate } from './websocket-addresses.ts';
import { failedStartAsError } from './shared-execution.ts';
import { attachFrameSink } from './shared-frames.ts';
import type { PersistedOperations } from './persisted-operations.ts';

/**
 * Too many connections for one user (presence's `maxConnectionsPerUser`, 20). This is graphql-ws's
 * own "too many" code (TooManyInitialisationRequests), which its clients treat as fatal: they stop
 * instead of reconnecting in a loop that is refused again until one of the user's sockets closes.
 */
const CLOSE_TOO_MANY_CONNECTIONS = CloseCode.TooManyInitialisationRequests;

/**
 * A connection that cannot be accepted because PostgreSQL or Redis is out of reach is closed with
 * 1013 (Try Again Later), which graphql-ws clients retry; graphql-ws's own answer, 4500 (with a
 * stack trace on stderr), makes them give up for good.
 */
function tryAgainLaterOnFailure<C extends { extra: { socket: WebSocket } }>(logger: Logger, accept: (ctx: C) => Promise<boolean>) {
  return async (ctx: C) => {
    try {
      return await accept(ctx);
    } catch (error) {
      logger.warn({ err: error }, 'could not accept a WebSocket connection: closing it with 1013');
      ctx.extra.socket.close(1013, 'Try again later');
      return false;
    }
  };
}

export interface WebSocketOptions {
  /** Operations (mostly subscriptions) one connection may run at once. Default 100. */
  maxOperationsPerConnection?: number;
  /** Keep-alive ping interval; a peer that misses a pong is dropped. Default 12 s. */
  keepAliveMs?: number;
  /** Time a client has to send `connection_init`. Default 10 s. */
  connectionInitWaitTimeoutMs?: number;
  /** Largest incoming message. Default 256 KiB. */
  maxPayloadBytes?: number;
}

export interface WebSocketHooks {
  /** Tracks connecting, closing and queries/mutations, so shutdown can wait for them. */
  inFlight: InFlight;
  /** The document of a subscribe payload (persisted-operations.ts), or the error to answer with. */
  socketQuery: PersistedOperations['socketQuery'];
  /** Sees every error sent to a client, in `error` and `next` messages (metrics count them). */
  onErrorsSent?: (errors: ReadonlyArray<{ extensions?: Record<string, unknown> }>) => void;
}

/** Per-connection state; Yoga's context factory turns it into each operation's context. */
export interface SocketState {
  connectionId: string;
  auth: Authentication & { viewer: NonNullable<Authentication['viewer']> };
  userAgent: string | null;
  /** The client's address (limits/client-address.ts). */
  clientAddress: string;
  /** The origin the socket connected to, from its upgrade request (for the links it is sent). */
  origin: string;
  operations: Set<string>;
  /** Whether presence counted this connection (so closing it must uncount it). */
  counted: boolean;
}

export interface WsServerContext {
  socketState?: SocketState;
  /** The Node request, for HTTP requests through the server (absent in-process, through `yoga.fetch`). */
  req?: IncomingMessage;
}

type Extra = {
  state?: SocketState;
};

/** `inFlight` tracks connecting, closing and queries/mutations, so shutdown can wait for them. */
export function attachWebSocketServer(
  server: Server,
  yoga: YogaServerInstance<WsServerContext, Context>,
  services: Services,
  { inFlight, socketQuery, onErrorsSent }: WebSocketHooks,
  options: WebSocketOptions = {},
) {
  const { maxOperationsPerConnection = 100, keepAliveMs = 12_000, connectionInitWaitTimeoutMs = 10_000, maxPayloadBytes = 256 * 1024 } = options;
  const { presence, logger, events } = services;
  const addresses = createAddressGate(services);
  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: maxPayloadBytes, verifyClient: addresses.verifyClient });
  /** Open sockets by device session, so logging out closes them on every instance. */
  const socketsBySession = new Map<string, Set<WebSocket>>();
  let runningOperations = 0;

  const stopSessionListener = events.bus.listen(channels.sessions, (payload) => {
    for (const sessionId of (payload as SessionsTopicEvent).sessionIds) {
      for (const socket of socketsBySession.get(sessionId) ?? []) socket.close(CloseCode.Unauthorized, 'Session ended');
    }
  });

  const untrack = (state: SocketState, socket: WebSocket) => {
    const sockets = socketsBySession.get(state.auth.viewer.sessionId);
    sockets?.delete(socket);
    if (sockets?.size === 0) socketsBySession.delete(state.auth.viewer.sessionId);
  };

  const tracked =
    <A extends unknown[], R>(hook: (...args: A) => Promise<R>) =>
    (...args: A) =>
      inFlight.track(hook(...args));

  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      connectionInitWaitTimeout: connectionInitWaitTimeoutMs,
      // onSubscribe put Yoga's enveloped execute/subscribe (with every plugin) in rootValue.
      // Subscriptions track their own work (shared-execution.ts); one that cannot start ends with an error message.
      execute: tracked(async (args: ExecutionArgs) => (args.rootValue as EnvelopedRoot).execute(args)) as never,
      subscribe: async (args) => failedStartAsError(await (args.rootValue as EnvelopedRoot).subscribe(args)) as never,

      onConnect: tracked(tryAgainLaterOnFailure(logger, async (ctx) => {
        const { socket, request } = ctx.extra;
        const offered = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization ?? request.headers.authorization;
        const auth = await authenticate(services, typeof offered === 'string' ? offered : undefined);
        if (!auth.viewer) {
          socket.close(CloseCode.Unauthorized, 'Unauthorized');
          return false;
        }
        addresses.authenticated(request);
        const state: SocketState = {
          connectionId: randomUUID(),
          auth: { ...auth, viewer: auth.viewer },
          userAgent: request.headers['user-agent'] ?? null,
          clientAddress: addresses.of(request),
          origin: `${'encrypted' in request.socket && request.socket.encrypted ? 'https' : 'http'}://${request.headers.host ?? 'localhost'}`,
          operations: new Set(),
          counted: false,
        };
        ctx.extra.state = state;
        const { accepted } = await presence.connect(auth.viewer.userId);
        if (!accepted) {
          socket.close(CLOSE_TOO_MANY_CONNECTIONS, 'Too many connections');
          return false;
        }
        // The socket may have closed while presence was counting it; onClose then found nothing to uncount.
        if (socket.readyState !== socket.OPEN) {
          await presence.disconnect(auth.viewer.userId);
          return false;
        }
        state.counted = true;
        let sockets = socketsBySession.get(auth.viewer.sessionId);
        if (!sockets) socketsBySession.set(auth.viewer.sessionId, (sockets = new Set()));
        sockets.add(socket);
        return true;
      })),

      onClose: tracked(async (ctx) => {
        const { state } = ctx.extra;
        if (!state) return;
        untrack(state, ctx.extra.socket);
        runningOperations -= state.operations.size;
        state.operations.clear();
        if (state.counted) {
          state.counted = false;
          await presence.disconnect(state.auth.viewer.userId).catch((error) => logger.warn({ err: error }, 'presence disconnect failed'));
        }
      }),

      onSubscribe: async (ctx, id, payload) => {
        const state = ctx.extra.state!;
        // An expired token keeps its running subscriptions but starts nothing new: reconnect with a fresh one.
        if (state.auth.expiresAt && state.auth.expiresAt.getTime() <= Date.now()) {
          return [unauthenticated('TOKEN_EXPIRED', 'Access token expired: reconnect with a fresh one.')];
        }
        if (state.operations.size >= maxOperationsPerConnection) {
          return [rateLimited(`At most ${maxOperationsPerConnection} operations per connection.`)];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({ socketState: state });
        const query = await socketQuery(payload);
        if (typeof query !== 'string') return [query];
        let document;
        try {
          document = parse(query);
        } catch (error) {
          return [error as never];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        state.operations.add(id);
        runningOperations += 1;
        const contextValue = await contextFactory();
        // A subscription's error-free results are written to the socket as frames (shared-frames.ts).
        if (getOperationAST(document, payload.operationName)?.operation === 'subscription') attachFrameSink(contextValue, ctx.extra.socket, id);
        const args: ExecutionArgs = {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue,
          rootValue: { execute, subscribe } satisfies EnvelopedRoot,
        };
        return args;
      },

      onError: (_ctx, _id, _payload, errors) => {
        onErrorsSent?.(errors);
      },
      // Only results with errors come this way for subscriptions; the others are written as frames (shared-frames.ts).
      onNext: (_ctx, _id, _payload, _args, result) => {
        if ('errors' in result && result.errors) onErrorsSent?.(result.errors);
      },

      onComplete: (ctx, id) => {
        if (ctx.extra.state?.operations.delete(id)) runningOperations -= 1;
      },
    },
    wss,
    keepAliveMs,
  );

  return {
    /** Open connections on this instance. */
    get connections() {
      return wss.clients.size;
    },
    /** Operations (mostly subscriptions) running on this instance's connections. */
    get operations() {
      return runningOperations;
    },
    /**
     * Closes every socket with 1001. A client that has not answered the close frame within
     * `handshakeMs` is cut off: ws would wait 30 s for it, past an orchestrator's grace period.
     */
    async close(handshakeMs: number) {
      (await stopSessionListener)();
      for (const socket of wss.clients) socket.close(1001, 'Server shutting down');
      const cutOff = setTimeout(() => {
        if (wss.clients.size > 0) logger.info({ sockets: wss.clients.size }, 'cutting off WebSocket clients that did not answer the close frame');
        for (const socket of wss.clients) socket.terminate();
      }, handshakeMs);
      await disposable.dispose();
      clearTimeout(cutOff);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}
