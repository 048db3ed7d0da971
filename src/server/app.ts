// Assembles the server. Tests, the CLI and the benches all start the same thing through buildApp().
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga, useReadinessCheck, type YogaServerInstance } from 'graphql-yoga';
import { startSessionCleanup } from '../auth/session-cleanup.ts';
import { createContext, type Context } from '../context.ts';
import { migrateDatabase, openDatabase } from '../db/database.ts';
import { pendingMigrations } from '../db/migrate/index.ts';
import type { Config } from '../env.ts';
import { startUploadCleanup } from '../files/cleanup.ts';
import { useFileDownloads } from './plugins/file-downloads.ts';
import { useUploadLimits } from './plugins/upload-limits.ts';
import { multipartBodyLimit } from '../files/upload-sizes.ts';
import { createInFlight } from '../in-flight.ts';
import { createLogger, type Logger } from '../logger.ts';
import { createMetrics } from './metrics.ts';
import type { Notifications } from '../notifications/notifications.ts';
import { maskError, useErrorLogging } from './plugins/error-logging.ts';
import { useMaintenanceMode } from './plugins/maintenance.ts';
import { useRequestBodyLimit } from './plugins/request-body-limit.ts';
import { requestIdOf, useRequestId } from './plugins/request-id.ts';
import { createSubscriptionExecution } from './shared-execution.ts';
import { attachWebSocketServer, type WebSocketOptions, type WsServerContext } from './websocket.ts';
import { schema } from '../schema/index.ts';
import { createServices, type Services, type ServicesOptions } from '../services.ts';
import { shutdownBudget, WORK_SHARE } from '../shutdown.ts';

/**
 * How stop() divides SHUTDOWN_TIMEOUT, in shares of it counted from the start: WebSocket clients
 * have until a tenth (1 s at most) to answer the close frame; work in progress has until half
 * before connections are cut, and until WORK_SHARE after; the rest is for closing the queues,
 * presence, Redis, the workers and the database.
 */
const SHUTDOWN_SHARES = { closeHandshake: 0.1, beforeCut: 0.5, afterCut: WORK_SHARE } as const;
const CLOSE_HANDSHAKE_MAX_MS = 1_000;

export interface BuildAppOptions extends Pick<ServicesOptions, 'onQuery' | 'presence' | 'channelPrefix' | 'notifications'> {
  config: Config;
  /** Defaults to a pino logger at `config.logLevel`. */
  logger?: Logger;
  /** WebSocket limits. */
  webSocket?: WebSocketOptions;
}

export interface App {
  yoga: YogaServerInstance<WsServerContext, Context>;
  services: Services;
  notifications: Notifications;
  databaseUrl: string;
  /** Listens on `config.http` (port 0 picks a free one): HTTP and graphql-ws on /graphql. */
  start(): Promise<{ port: number; url: string }>;
  /**
   * Closes sockets and server, lets work in progress finish, then closes the pool, Redis and database
   * connections, and the embedded database if we started it: all within `config.shutdownTimeoutMs`.
   */
  stop(): Promise<void>;
}

/** Opens the database (embedded when no URL is set), applies migrations and wires every service. */
export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { config, logger = createLogger(config.logLevel) } = options;
  const database = await openDatabase(config, logger);
  await migrateDatabase(database.url, logger);

  // Requests and subscription work still running: stop() waits for it before closing what it uses.
  const inFlight = createInFlight();
  const subscriptions = createSubscriptionExecution(inFlight, { retryTimeoutMs: config.realtime.feedGapTimeoutMs });
  const { onQuery, presence, channelPrefix } = options;
  const { services, notifications, ...lifecycle } = createServices(config, logger, {
    databaseUrl: database.url,
    inFlight,
    onQuery,
    presence,
    channelPrefix,
    notifications: options.notifications,
  });
  const { prisma, pool, maintenance } = services;
  await lifecycle.start();
  const stopUploadCleanup = startUploadCleanup(services, { retentionMs: config.files.unusedRetentionMs });
  const stopSessionCleanup = startSessionCleanup(services);

  let webSockets: ReturnType<typeof attachWebSocketServer> | undefined;
  const metrics = createMetrics({ pool, webSockets: () => webSockets });
  metrics.gauge('kocmoc_notification_queue_depth', 'Push notification jobs waiting, delayed or running.', () => notifications.queue.depth());
  metrics.gauge(
    'kocmoc_upload_memory_bytes',
    'Upload bytes held in memory (request bodies and image working copies), of UPLOAD_MEMORY_BYTES.',
    () => services.uploadMemory.heldBytes,
  );
  metrics.gauge('kocmoc_upload_memory_waiting', 'Upload requests waiting for room in UPLOAD_MEMORY_BYTES.', () => services.uploadMemory.waiting);

  let migrationsPending = true;
  const yoga = createYoga<WsServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    graphiql: { title: 'Kocmoc', subscriptionsProtocol: 'WS' },
    maskedErrors: { maskError },
    // Yoga's cut-off for any request body (25 MB by default) must not be below the upload limit;
    // multipart bodies meet useUploadLimits' (same size, clearer error) first, others
    // useRequestBodyLimit's (MAX_REQUEST_BYTES).
    maxRequestBodySize: Math.max(25_000_000, multipartBodyLimit(config.files.maxUploadBytes)),
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      // Yoga logs each error it masks, without the request id; useErrorLogging logs them with it.
      error: (...args) => logger.debug(args.map(String).join(' ')),
    },
    context: ({ request, socketState }) =>
      socketState
        ? createContext(services, {
            requestId: `${socketState.connectionId}/${randomUUID().slice(0, 8)}`,
            authorization: socketState.auth,
            userAgent: socketState.userAgent,
          })
        : createContext(services, {
            requestId: requestIdOf(request),
            authorization: request.headers.get('authorization'),
            userAgent: request.headers.get('user-agent'),
            adminToken: request.headers.get('x-admin-token'),
          }),
    plugins: [
      useRequestId(),
      useErrorLogging(logger),
      metrics.plugin,
      subscriptions.plugin,
      useMaintenanceMode(maintenance),
      useRequestBodyLimit(config.http.maxRequestBytes),
      useUploadLimits({ maxUploadBytes: config.files.maxUploadBytes, memory: services.uploadMemory }),
      useFileDownloads(services),
      useReadinessCheck({
        endpoint: '/ready',
        check: async ({ fetchAPI }) => {
          await prisma.$queryRaw`SELECT 1`;
          // Once applied, migrations stay applied for this process's lifetime.
          if (migrationsPending) migrationsPending = (await pendingMigrations({ databaseUrl: database.url })).length > 0;
          const state = await maintenance.get();
          // Maintenance keeps the instance ready (queries and subscriptions still work) but says so.
          return fetchAPI.Response.json(
            { ready: !migrationsPending, migrationsPending, maintenance: { enabled: state.enabled, message: state.message } },
            { status: migrationsPending ? 503 : 200 },
          );
        },
      }),
    ],
  });

  let server: Server | undefined;

  return {
    yoga,
    services,
    notifications,
    databaseUrl: database.url,
    async start() {
      server = createServer((request, response) => {
        // Until both are done: a streamed body (events, a download) outlives the handler, and the
        // handler of a request whose client went away still runs.
        const responded = new Promise((resolve) => response.once('close', resolve));
        void inFlight.track(Promise.all([yoga(request, response), responded]));
      });
      webSockets = attachWebSocketServer(server, yoga, services, { inFlight, onErrorsSent: (errors) => metrics.countErrors('ws', errors) }, options.webSocket);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.http.port, config.http.host, resolve);
      });
      const { port } = server.address() as AddressInfo;
      const host = config.http.host === '0.0.0.0' ? 'localhost' : config.http.host;
      return { port, url: `http://${host}:${port}/graphql` };
    },
    async stop() {
      // Nothing new comes in; subscriptions end; requests get a while to finish. Only once no work
      // is left does anything it uses (queues, presence, Redis, workers, the database) close.
      const budget = shutdownBudget(config.shutdownTimeoutMs);
      const serverClosed = server?.listening ? new Promise<void>((resolve) => server!.close(() => resolve())) : undefined;
      await webSockets?.close(Math.min(CLOSE_HANDSHAKE_MAX_MS, budget.until(SHUTDOWN_SHARES.closeHandshake)));
      subscriptions.close();
      let settled = await inFlight.settled(budget.until(SHUTDOWN_SHARES.beforeCut));
      server?.closeAllConnections();
      // A request whose connection was cut still runs to its end.
      if (!settled) settled = await inFlight.settled(budget.until(SHUTDOWN_SHARES.afterCut));
      if (!settled) logger.warn('stopping while requests or subscription work still run');
      // Work still running holds a database connection, which the database's disconnect waits for.
      await budget.finish(async () => {
        await serverClosed;
        metrics.stop();
        await stopUploadCleanup();
        await stopSessionCleanup();
        await lifecycle.stop();
        await database.stop();
      }, logger);
    },
  };
}
