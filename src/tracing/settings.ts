// The settings src/env.ts validates for tracing. Unset OTEL_EXPORTER_OTLP_ENDPOINT means no
// tracing at all: no OpenTelemetry SDK is loaded and no plugin runs.
import { z } from 'zod';
import { optionalString } from '../env-fields.ts';

/** The standard OTEL_TRACES_SAMPLER values (the OpenTelemetry SDK environment specification). */
export const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

export const tracingSettings = {
  /** OTLP/HTTP collector (Jaeger, the OpenTelemetry Collector): spans go to `<endpoint>/v1/traces`. Unset: tracing off. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  /** `service.name` of the spans. Default kocmoc (the worker adds `-worker`). */
  OTEL_SERVICE_NAME: z.string().default('kocmoc'),
  /** Resolvers that run at least this many milliseconds get a span of their own. Default 10. */
  TRACE_RESOLVER_THRESHOLD_MS: z.coerce.number().min(0).max(60_000).default(10),
  /**
   * Head sampling: which traces are recorded and exported. Default `parentbased_always_on` (every
   * trace, unless the client's `traceparent` says it did not sample it); `parentbased_traceidratio`
   * with OTEL_TRACES_SAMPLER_ARG=0.1 keeps one trace in ten, the client's decision first.
   */
  OTEL_TRACES_SAMPLER: z.enum(SAMPLERS).default('parentbased_always_on'),
  /** The ratio (0 to 1) of the `traceidratio` samplers. Default 1. */
  OTEL_TRACES_SAMPLER_ARG: optionalString.transform((value) => (value === undefined ? 1 : Number(value))).pipe(z.number().min(0).max(1)),
};

type TracingEnv = z.output<z.ZodObject<typeof tracingSettings>>;

export function toTracingConfig(env: TracingEnv) {
  return {
    /** Undefined: tracing is off. */
    endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, ''),
    serviceName: env.OTEL_SERVICE_NAME,
    resolverThresholdMs: env.TRACE_RESOLVER_THRESHOLD_MS,
    sampler: env.OTEL_TRACES_SAMPLER,
    samplerRatio: env.OTEL_TRACES_SAMPLER_ARG,
  };
}

export type TracingConfig = ReturnType<typeof toTracingConfig>;
