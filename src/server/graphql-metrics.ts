// The GraphQL series of @graphql-yoga/plugin-prometheus, with labels from bounded sets only, so
// /metrics cannot grow with what clients send: an operation name is kept when it is one of the known
// ones (METRICS_OPERATION_NAMES), else counted as `other` (`anonymous` without a name); HTTP
// requests are labelled by route template, never by URL; errors carry no response path.
import { createCounter, createHistogram, usePrometheus, type FillLabelsFnParams } from '@graphql-yoga/plugin-prometheus';
import type { Plugin } from 'graphql-yoga';
import type { Registry } from 'prom-client';

const OPERATION_LABELS = ['operationType', 'operationName'];

/** Route templates of everything this server answers; anything else is `other`. */
export function routeOf(pathname: string): string {
  if (/^\/files\/[^/]+\/thumbnail$/.test(pathname)) return '/files/:id/thumbnail';
  if (/^\/files\/[^/]+$/.test(pathname)) return '/files/:id';
  return ['/graphql', '/health', '/ready', '/metrics'].includes(pathname) ? pathname : 'other';
}

const METHODS = new Set(['GET', 'POST', 'OPTIONS', 'HEAD']);

export function createGraphQLMetrics(registry: Registry, knownOperationNames: ReadonlySet<string>): Plugin {
  const operationName = (name: string | undefined) => (!name || name === 'Anonymous' ? 'anonymous' : knownOperationNames.has(name) ? name : 'other');
  const operationLabels = (params: FillLabelsFnParams) => ({
    operationType: params.operationType ?? 'unknown',
    operationName: operationName(params.operationName),
  });
  const histogram = (name: string, help: string, phases: Array<'parse' | 'validate' | 'execute' | 'subscribe'>) =>
    // The plugin types each metric by its phases; these are the ones it names for them.
    createHistogram({ registry, histogram: { name, help, labelNames: OPERATION_LABELS }, fillLabelsFn: operationLabels, phases: phases as never }) as never;

  return usePrometheus({
    // server/metrics.ts serves /metrics itself, behind METRICS_TOKEN or on METRICS_PORT.
    endpoint: false,
    registry,
    metrics: {
      graphql_envelop_request: createCounter({
        registry,
        counter: { name: 'graphql_envelop_request', help: 'GraphQL operations run.', labelNames: OPERATION_LABELS },
        fillLabelsFn: operationLabels,
        phases: ['execute', 'subscribe'] as never,
      }),
      graphql_envelop_request_duration: histogram('graphql_envelop_request_duration', 'Time spent running GraphQL operations.', ['execute', 'subscribe']),
      graphql_envelop_error_result: createCounter({
        registry,
        counter: { name: 'graphql_envelop_error_result', help: 'GraphQL errors, by phase.', labelNames: [...OPERATION_LABELS, 'phase'] },
        fillLabelsFn: (params: FillLabelsFnParams & { errorPhase?: string }) => ({ ...operationLabels(params), phase: params.errorPhase ?? 'unknown' }),
        phases: ['parse', 'validate', 'context', 'execute', 'subscribe'] as never,
      }),
      graphql_envelop_phase_parse: histogram('graphql_envelop_phase_parse', 'Time spent parsing GraphQL documents.', ['parse']),
      graphql_envelop_phase_validate: histogram('graphql_envelop_phase_validate', 'Time spent validating GraphQL documents.', ['validate']),
      graphql_envelop_phase_execute: histogram('graphql_envelop_phase_execute', 'Time spent executing GraphQL operations.', ['execute']),
      graphql_envelop_phase_subscribe: histogram('graphql_envelop_phase_subscribe', 'Time spent setting up GraphQL subscriptions.', ['subscribe']),
      graphql_yoga_http_duration: createHistogram({
        registry,
        histogram: {
          name: 'graphql_yoga_http_duration',
          help: 'Time spent on GraphQL HTTP requests.',
          labelNames: [...OPERATION_LABELS, 'method', 'statusCode', 'route'],
        },
        fillLabelsFn: (params: FillLabelsFnParams & { request: Request; response: Response }) => ({
          ...operationLabels(params),
          method: METHODS.has(params.request.method) ? params.request.method : 'other',
          statusCode: params.response.status,
          route: routeOf(new URL(params.request.url).pathname),
        }),
        phases: ['request'] as never,
      }),
      // Off: by field or schema, they are bounded but many, and nothing alerts on them.
      graphql_envelop_deprecated_field: false,
      graphql_envelop_request_time_summary: false,
      graphql_envelop_phase_context: false,
      graphql_envelop_schema_change: false,
    },
  });
}
