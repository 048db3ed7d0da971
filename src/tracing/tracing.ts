// OpenTelemetry, loaded only when an OTLP endpoint is configured: the SDK and the exporter are
// imported here and nowhere else, so with tracing off none of it is in the process.
import { context, createContextKey, propagation, trace, TraceFlags, type Context, type Tracer } from '@opentelemetry/api';
import { setLogContext } from '../logger.ts';
import type { TracingConfig } from './settings.ts';

export interface Tracing {
  tracer: Tracer;
  resolverThresholdMs: number;
  /** Exports what is still buffered, then unregisters the global context manager and propagator. */
  shutdown(): Promise<void>;
}

/** How long finished spans wait to be exported together. */
const EXPORT_DELAY_MS = 1_000;
/** Spans per OTLP request: fewer, larger requests cost less per span to send. */
const EXPORT_BATCH = 1_024;
/** Finished spans held while an export is under way (beyond it they are dropped, not queued in memory). */
const EXPORT_QUEUE = 8_192;

/** The request id of the operation a context belongs to: what log lines written in it carry. */
const REQUEST_ID = createContextKey('kocmoc.request_id');

export const withRequestId = (parent: Context, requestId: string | undefined): Context => (requestId ? parent.setValue(REQUEST_ID, requestId) : parent);

/** The ids log lines carry: the active span's, when its trace is recorded, and the request's. */
function activeLogContext() {
  const active = context.active();
  const requestId = active.getValue(REQUEST_ID) as string | undefined;
  const span = trace.getSpan(active)?.spanContext();
  if (!span || (span.traceFlags & TraceFlags.SAMPLED) === 0) return requestId === undefined ? undefined : { requestId };
  return { requestId, traceId: span.traceId, spanId: span.spanId };
}

export async function startTracing(config: TracingConfig, role: string = ''): Promise<Tracing | undefined> {
  if (config.endpoint === undefined) return undefined;
  const [sdk, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const exporter = new OTLPTraceExporter({ url: `${config.endpoint}/v1/traces` });
  const root = {
    always_on: () => new sdk.AlwaysOnSampler(),
    always_off: () => new sdk.AlwaysOffSampler(),
    traceidratio: () => new sdk.TraceIdRatioBasedSampler(config.samplerRatio),
  };
  const [parentBased, rootKind] = config.sampler.startsWith('parentbased_') ? [true, config.sampler.slice('parentbased_'.length)] : [false, config.sampler];
  const rootSampler = root[rootKind as keyof typeof root]();
  const provider = new sdk.NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName + role }),
    sampler: parentBased ? new sdk.ParentBasedSampler({ root: rootSampler }) : rootSampler,
    spanProcessors: [new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: EXPORT_DELAY_MS, maxExportBatchSize: EXPORT_BATCH, maxQueueSize: EXPORT_QUEUE })],
  });
  // The AsyncLocalStorage context manager (spans of Prisma, the worker pool and logs find their
  // operation's span) and W3C traceparent propagation.
  provider.register();
  setLogContext(activeLogContext);
  return {
    tracer: provider.getTracer('kocmoc'),
    resolverThresholdMs: config.resolverThresholdMs,
    async shutdown() {
      setLogContext(undefined);
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** A `cpu <task>` span per worker-pool task, under the span that ran it (its duration measured by the pool). */
export function traceTasks(tracing: Tracing, pool: { onTaskDone(listener: (task: string, ms: number) => void): () => void }): () => void {
  return pool.onTaskDone((task, ms) => {
    const parent = context.active();
    if (trace.getSpan(parent)?.isRecording() === false) return;
    const end = performance.timeOrigin + performance.now();
    tracing.tracer.startSpan(`cpu ${task}`, { startTime: end - ms, attributes: { 'kocmoc.task': task } }, parent).end(end);
  });
}
