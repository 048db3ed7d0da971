// GET /metrics in Prometheus format: GraphQL operations (counts, durations, errors), WebSocket
// connections and operations, the worker pool, and whatever else registers a gauge here.
import { timingSafeEqual } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerPool } from '../cpu/pool.ts';
import type { Config } from '../env.ts';
import { createGraphQLMetrics } from './graphql-metrics.ts';

export interface MetricsOptions {
  pool: WorkerPool;
  /** Live WebSocket numbers of this instance (undefined before the server listens). */
  webSockets: () => { connections: number; operations: number } | undefined;
  /** METRICS_TOKEN, METRICS_PORT and the known operation names. */
  exposure: Config['exposure']['metrics'];
  /** In production, /metrics is served only behind METRICS_TOKEN or on METRICS_PORT. */
  production: boolean;
}

export interface MetricsAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Metrics {
  registry: Registry;
  plugin: Plugin;
  /** Counts errors sent to clients by their `extensions.code` (the HTTP ones the plugin counts itself). */
  countErrors(transport: 'http' | 'ws', errors: ReadonlyArray<{ extensions?: Record<string, unknown> }> | undefined): void;
  /** Whether the API's own port serves GET /metrics (not with METRICS_PORT, nor in production without METRICS_TOKEN). */
  servedOnApiPort: boolean;
  /** Answers GET /metrics: 401 without the METRICS_TOKEN bearer token when one is set. */
  respond(authorization: string | null): Promise<MetricsAnswer>;
  /** Adds a gauge read at scrape time (e.g. a job queue's depth). */
  gauge(name: string, help: string, read: () => number | Promise<number>): void;
  stop(): void;
}

export function createMetrics({ pool, webSockets, exposure, production }: MetricsOptions): Metrics {
  // A registry per app, so several apps in one process (tests) do not collide.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'kocmoc_' });

  const gauge = (name: string, help: string, read: () => number | Promise<number>) =>
    void new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(await read());
      },
    });

  gauge('kocmoc_ws_connections', 'Open graphql-ws connections on this instance.', () => webSockets()?.connections ?? 0);
  gauge('kocmoc_ws_operations', 'Operations (mostly subscriptions) running on graphql-ws connections.', () => webSockets()?.operations ?? 0);
  gauge('kocmoc_worker_pool_queue_length', 'Tasks waiting for a worker thread.', () => pool.queueSize);
  const taskDuration = new Histogram({
    name: 'kocmoc_worker_task_duration_seconds',
    help: 'Run time of worker-pool tasks.',
    labelNames: ['task'],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const stopTaskListener = pool.onTaskDone((task, ms) => taskDuration.observe({ task }, ms / 1_000));

  // By code, so RATE_LIMITED (overload), INTERNAL (bugs) or UNAUTHENTICATED (expired clients) can be
  // alerted on: Prometheus' error series above count errors by operation, not by kind.
  const errorsSent = new Counter({
    name: 'kocmoc_graphql_errors_total',
    help: 'Errors sent to clients, by extensions.code and transport (http, ws).',
    labelNames: ['code', 'transport'],
    registers: [registry],
  });
  const countErrors: Metrics['countErrors'] = (transport, errors) => {
    for (const error of errors ?? []) errorsSent.inc({ code: String(error.extensions?.code ?? 'UNKNOWN'), transport });
  };
  // Every HTTP answer, refusals before execution (413, 429, MAINTENANCE) included; subscriptions over
  // SSE are streams and not counted here.
  const countHttpErrors: Plugin = {
    onResultProcess({ result }) {
      for (const single of Array.isArray(result) ? result : [result]) {
        if (single && typeof single === 'object' && 'errors' in single) countErrors('http', single.errors as never);
      }
    },
  };

  const prometheus = createGraphQLMetrics(registry, exposure.operationNames);
  const servedOnApiPort = exposure.port === undefined && (!production || exposure.token !== undefined);
  const respond: Metrics['respond'] = async (authorization) => {
    if (exposure.token !== undefined && !isBearer(authorization, exposure.token)) {
      return {
        status: 401,
        headers: { 'content-type': 'application/json', 'www-authenticate': 'Bearer' } as Record<string, string>,
        body: JSON.stringify({ errors: [{ message: 'Send the METRICS_TOKEN as a Bearer token.', extensions: { code: 'UNAUTHENTICATED' } }] }),
      };
    }
    return { status: 200, headers: { 'content-type': String(registry.contentType) }, body: await registry.metrics() };
  };
  const serveMetrics: Plugin = {
    onRequest({ url, request, endResponse, fetchAPI }) {
      if (!servedOnApiPort || url.pathname !== '/metrics') return;
      return respond(request.headers.get('authorization')).then(({ body, ...init }) => endResponse(new fetchAPI.Response(body, init)));
    },
  };

  const plugin: Plugin = { onPluginInit: ({ addPlugin }) => [serveMetrics, prometheus, countHttpErrors].forEach(addPlugin) };
  return { registry, plugin, servedOnApiPort, respond, gauge, countErrors, stop: stopTaskListener };
}

/** Constant-time comparison of `Authorization: Bearer <token>`. */
function isBearer(authorization: string | null, token: string): boolean {
  const presented = Buffer.from(authorization?.startsWith('Bearer ') ? authorization.slice(7).trim() : '');
  const expected = Buffer.from(token);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
