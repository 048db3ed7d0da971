// Assembles the server. Tests, the CLI and the benches all start the same thing through buildApp().
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga, useReadinessCheck, type YogaServerInstance } from 'graphql-yoga';
import { useDeferStream } from '@graphql-yoga/plugin-defer-stream';
import { startSessionCleanup } from '../auth/session-cleanup.ts';
import { startAccountCleanup } from '../users/account-cleanup.ts';
import { runCallJob } from '../calls/deadlines.ts';
import { createContext, type Context } from '../context.ts';
import { migrateDatabase, openDatabase } from '../db/database.ts';
import { pendingMigrations } from '../db/migrate/index.ts';
import type { Config } from '../env.ts';
import { startUploadCleanup } from '../files/cleanup.ts';
import { startEnvelopeCleanup } from '../messages/envelopes.ts';
import { startScheduledSends } from '../messages/scheduled.ts';
import { startSearchReindex } from '../messages/search-reindex-runner.ts';
import { useFileDownloads } from './plugins/file-downloads.ts';
import { useHttpRefusalBodies } from './plugins/http-refusals.ts';
import { graphiqlOptions, renderGraphiQL, useGraphiQLAssets } from './graphiql.ts';
import { useWebClient } from './plugins/web-client.ts';
import { useUploadLimits } from './plugins/upload-limits.ts';
import { multipartBodyLimit } from '../files/upload-sizes.ts';
import { createInFlight } from '../in-flight.ts';
import { createLogger, type Logger } from '../logger.ts';
import { createMetrics } from './metrics.ts';
import type { Notifications } from '../notifications/notifications.ts';
import { maskError, useErrorLogging } from './plugins/error-logging.ts';
import { useMaintenanceMode } from './plugins/maintenance.ts';
import { useReadYourWrites } from './plugins/read-your-writes.ts';
import { useRequestBodyLimit } from './plugins/request-body-limit.ts';
import { useRequestParseErrors } from './plugins/request-parse-errors.ts';
import { requestIdOf, useRequestId } from './plugins/request-id.ts';
import { createSubscriptionExecution } from './shared-execution.ts';
import { createPersistedOperations } from './persisted-operations.ts';
import { attachWebSocketServer, type WebSocketOptions, type WsServerContext } from './websocket.ts';
import { schema } from '../schema/index.ts';
import { createServices, type Services, type ServicesOptions } from '../services.ts';
import { shutdownBudget, WORK_SHARE } from '../shutdown.ts';
import { clientAddressOf } from '../limits/client-address.ts';
import { useDocumentLimits } from './plugins/document-limits.ts';
import { useCorsPolicy, useSecurityHeaders } from './plugins/http-policy.ts';
import { listenForMetrics } from './metrics-server.ts';
import { useHttpAnswers } from './plugins/http-answers.ts';
import { useTracing } from './plugins/tracing.ts';
import { startTracing, traceTasks } from '../tracing/tracing.ts';

/**
 * How stop() divides SHUTDOWN_TIMEOUT, in shares of it counted from the start: WebSocket clients
 * have until a tenth (1 s at most) to answer the close frame; work in progress has until half
 * before connections are cut, and until WORK_SHARE after; the rest is for closing the queues,
 * presence, Redis, the workers and the database.
 */
const SHUTDOWN_SHARES = { closeHandshake: 0.1, beforeCut: 0.5, afterCut: WORK_SHARE } as const;
const CLOSE_HANDSHAKE_MAX_MS = 1_000;

export interface BuildAppOptions extends Pick<ServicesOptions, 'onQuery' | 'presence' | 'channelPrefix' | 'notifications' | 'rateLimitKeyPrefix'> {
  config: Config;
  /** Defaults to a pino logger at `config.logLevel`. */
  logger?: Logger;
  /** WebSocket limits. */
  webSocket?: WebSocketOptions;
  /**
   * The document limits (useDocumentLimits). Default true; only the limits bench (bench/limits.ts)
   * builds an app without them, to measure what they cost: no setting turns them off.
   */
  documentLimits?: boolean;
}

export interface App {
  yoga: YogaServerInstance<WsServerContext, Context>;
  services: Services;
  notifications: Notifications;
  databaseUrl: string;
  /** Listens on `config.http` (port 0 picks a free one): HTTP and graphql-ws on /graphql. */
  start(): Promise<{ port: number; url: string; metricsPort?: number }>;
  /**
   * Closes sockets and server, lets work in progress finish, then closes the pool, Redis and database
   * connections, and the embedded database if we started it: all within `config.shutdownTimeoutMs`.
   */
  stop(): Promise<void>;
}

/** Opens the database (embedded when no URL is set), applies migrations and wires every service. */
export async function buildApp(options: BuildAppOptions): Promise<App> {
  const { config, logger = createLogger(config.logLevel) } = options;
  // Before anything that could make a span; undefined (and no SDK loaded) without an OTLP endpoint.
  const tracing = await startTracing(config.tracing);
  const database = await openDatabase(config, logger);
  // Migrations hold a session (an advisory lock): past a transaction-mode pooler, on the direct URL.
  await migrateDatabase(config.database.directUrl ?? database.url, logger);

  // Requests and subscription work still running: stop() waits for it before closing what it uses.
  const inFlight = createInFlight();
  const subscriptions = createSubscriptionExecution(inFlight, { retryTimeoutMs: config.realtime.feedGapTimeoutMs });
  const { onQuery, presence, channelPrefix, rateLimitKeyPrefix } = options;
  const { services, notifications, ...lifecycle } = createServices(config, logger, {
    databaseUrl: database.url,
    inFlight,
    onQuery,
    tracer: tracing?.tracer,
    presence,
    channelPrefix,
    rateLimitKeyPrefix,
    notifications: options.notifications,
  });
  const { prisma, pool, maintenance } = services;
  await lifecycle.start();
  // Call deadlines left by an earlier run are scheduled again here (calls/timers.ts).
  await services.calls.start((job) => runCallJob(services, job));
  const stopUploadCleanup = startUploadCleanup(services, { retentionMs: config.files.unusedRetentionMs });
  const stopSessionCleanup = startSessionCleanup(services);
  const stopAccountCleanup = startAccountCleanup(services);
  const stopEnvelopeCleanup = startEnvelopeCleanup(services, config.e2e.envelopeRetentionMs);
  const stopScheduledSends = await startScheduledSends(services);
  const { batchSize, pauseMs, enabled: reindexing } = config.search.reindex;
  const reindex = reindexing ? startSearchReindex(services, { redisUrl: config.redisUrl, prefix: config.jobs.queuePrefix, batchSize, pauseMs, tracer: tracing?.tracer }) : undefined;
  const stopTracingTasks = tracing ? traceTasks(tracing, pool) : undefined;

  let webSockets: ReturnType<typeof attachWebSocketServer> | undefined;
  const metrics = createMetrics({
    pool,
    webSockets: () => webSockets,
    exposure: config.exposure.metrics,
    production: config.env === 'production',
  });
  if (!metrics.servedOnApiPort && config.exposure.metrics.port === undefined) {
    logger.warn('GET /metrics is not served: in production set METRICS_TOKEN (Bearer) or METRICS_PORT (an internal interface)');
  }
  metrics.gauge('kocmoc_notification_queue_depth', 'Push notification jobs waiting, delayed or running.', () => notifications.queue.depth());
  metrics.gauge(
    'kocmoc_upload_memory_bytes',
    'Upload bytes held in memory (request bodies and image working copies), of UPLOAD_MEMORY_BYTES.',
    () => services.uploadMemory.heldBytes,
  );
  if (reindex) {
    const { progress } = reindex;
    metrics.gauge('kocmoc_search_reindex_rewritten', 'Search index entries this instance moved to the current key.', () => progress.rewritten);
    metrics.gauge('kocmoc_search_reindex_finished', '1 once every readable search index entry is under the current key.', () => progress.finished);
  }
  metrics.gauge('kocmoc_upload_memory_waiting', 'Upload requests waiting for room in UPLOAD_MEMORY_BYTES.', () => services.uploadMemory.waiting);

  const persisted = createPersistedOperations(config.exposure.persistedOperations, services.redis);
  let migrationsPending = true;
  const yoga = createYoga<WsServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/health',
    landingPage: false,
    graphiql: config.exposure.graphiql ? graphiqlOptions : false,
    renderGraphiQL,
    // useCorsPolicy answers for CORS instead: Yoga's own reflects any origin with credentials.
    cors: false,
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
    context: ({ request, socketState, req }) =>
      socketState
        ? createContext(services, {
            requestId: `${socketState.connectionId}/${randomUUID().slice(0, 8)}`,
            authorization: socketState.auth,
            userAgent: socketState.userAgent,
            clientAddress: socketState.clientAddress,
            origin: socketState.origin,
          })
        : createContext(services, {
            requestId: requestIdOf(request),
            authorization: request.headers.get('authorization'),
            userAgent: request.headers.get('user-agent'),
            adminToken: request.headers.get('x-admin-token'),
            origin: new URL(request.url).origin,
            clientAddress: clientAddressOf(req?.socket.remoteAddress, request.headers.get('x-forwarded-for'), config.limits.trustProxyHops),
          }),
    plugins: [
      useHttpRefusalBodies(),
      useCorsPolicy(config.exposure.corsOrigins),
      useSecurityHeaders(),
      useRequestId(),
      useErrorLogging(logger),
      ...persisted.plugins,
      // @defer and @stream: multipart/mixed or text/event-stream over HTTP, several `next` messages over graphql-ws.
      useDeferStream(),
      metrics.plugin,
      subscriptions.plugin,
      ...(tracing ? [useTracing(tracing.tracer, tracing)] : []),
      ...(options.documentLimits === false ? [] : [useDocumentLimits({ limits: config.limits.document, introspection: config.exposure.introspection })]),
      useMaintenanceMode(maintenance),
      useReadYourWrites(),
      useRequestBodyLimit(config.http.maxRequestBytes),
      useUploadLimits({
        maxUploadBytes: config.files.maxUploadBytes,
        maxUploadsPerRequest: config.limits.document.maxUploadsPerRequest,
        memory: services.uploadMemory,
      }),
      useRequestParseErrors(),
      useFileDownloads(services),
      useGraphiQLAssets(),
      useWebClient(),
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
      useHttpAnswers('/graphql'),
    ],
  });

  let server: Server | undefined;
  let metricsServer: Server | undefined;

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
      webSockets = attachWebSocketServer(server, yoga, services, {
        inFlight,
        socketQuery: persisted.socketQuery,
        onErrorsSent: (errors) => metrics.countErrors('ws', errors),
      }, options.webSocket);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(config.http.port, config.http.host, resolve);
      });
      if (config.exposure.metrics.port !== undefined) metricsServer = await listenForMetrics(config.exposure.metrics, metrics);
      const { port } = server.address() as AddressInfo;
      const host = config.http.host === '0.0.0.0' ? 'localhost' : config.http.host;
      const metricsPort = metricsServer ? (metricsServer.address() as AddressInfo).port : undefined;
      return { port, url: `http://${host}:${port}/graphql`, metricsPort };
    },
    async stop() {
      // Nothing new comes in; subscriptions end; requests get a while to finish. Only once no work
      // is left does anything it uses (queues, presence, Redis, workers, the database) close.
      const budget = shutdownBudget(config.shutdownTimeoutMs);
      const serverClosed = server?.listening ? new Promise<void>((resolve) => server!.close(() => resolve())) : undefined;
      metricsServer?.close();
      metricsServer?.closeAllConnections();
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
        await stopAccountCleanup();
        await stopEnvelopeCleanup();
        await stopScheduledSends();
        await reindex?.stop();
        await lifecycle.stop();
        stopTracingTasks?.();
        await tracing?.shutdown();
        await database.stop();
      }, logger);
    },
  };
}
