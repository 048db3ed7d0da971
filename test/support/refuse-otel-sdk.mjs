// `node --import ./test/support/refuse-otel-sdk.mjs`: any import of the OpenTelemetry SDK, exporter
// or resources fails, so a process that runs shows the SDK was never loaded (test/tracing.test.ts).
import { register } from 'node:module';

const hooks = `export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (/@opentelemetry\\/(sdk-|exporter-|resources)/.test(resolved.url)) throw new Error('OpenTelemetry SDK loaded: ' + resolved.url);
  return resolved;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
