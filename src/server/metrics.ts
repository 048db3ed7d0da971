// GET /metrics in Prometheus format: GraphQL operations (counts, durations, errors), WebSocket
// connections and operations, the worker pool, and whatever else registers a gauge here.
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import type { Plugin } from 'graphql-yoga';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerPool } from '../cpu/pool.ts';

export interface MetricsOptions {
  pool: WorkerPool;
  /** Live WebSocket numbers of this instance (undefined before the server listens). */
  webSockets: () => { connections: number; operations: number } | undefined;
}

export interface Metrics {
  registry: Registry;
  plugin: Plugin;
  /** Counts errors sent to clients by their `extensions.code` (the HTTP ones the plugin counts itself). */
  countErrors(transport: 'http' | 'ws', errors: ReadonlyArray<{ extensions?: Record<string, unknown> }> | undefined): void;
  /** Adds a gauge read at scrape time (e.g. a job queue's depth). */
  gauge(name: string, help: string, read: () => number | Promise<number>): void;
  stop(): void;
}

export function createMetrics({ pool, webSockets }: MetricsOptions): Metrics {
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

  const prometheus = usePrometheus({
    endpoint: '/metrics',
    registry,
    metrics: {
      graphql_envelop_request: true,
      graphql_envelop_request_duration: true,
      graphql_envelop_error_result: true,
      graphql_envelop_phase_parse: true,
      graphql_envelop_phase_validate: true,
      graphql_envelop_phase_execute: true,
      graphql_envelop_phase_subscribe: true,
      graphql_yoga_http_duration: true,
    },
  });

  const plugin: Plugin = { onPluginInit: ({ addPlugin }) => [prometheus, countHttpErrors].forEach(addPlugin) };
  return { registry, plugin, gauge, countErrors, stop: stopTaskListener };
}
