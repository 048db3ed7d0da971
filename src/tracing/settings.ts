// The settings src/env.ts validates for tracing. Unset OTEL_EXPORTER_OTLP_ENDPOINT means no
// tracing at all: no OpenTelemetry SDK is loaded and no plugin runs.
import { z } from 'zod';
import { optionalString } from '../env-fields.ts';

export const tracingSettings = {
  /** OTLP/HTTP collector (Jaeger, the OpenTelemetry Collector): spans go to `<endpoint>/v1/traces`. Unset: tracing off. */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  /** `service.name` of the spans. Default kocmoc (the worker adds `-worker`). */
  OTEL_SERVICE_NAME: z.string().default('kocmoc'),
  /** Resolvers that run at least this many milliseconds get a span of their own. Default 10. */
  TRACE_RESOLVER_THRESHOLD_MS: z.coerce.number().min(0).max(60_000).default(10),
};

type TracingEnv = z.output<z.ZodObject<typeof tracingSettings>>;

export function toTracingConfig(env: TracingEnv) {
  return {
    /** Undefined: tracing is off. */
    endpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, ''),
    serviceName: env.OTEL_SERVICE_NAME,
    resolverThresholdMs: env.TRACE_RESOLVER_THRESHOLD_MS,
  };
}

export type TracingConfig = ReturnType<typeof toTracingConfig>;
