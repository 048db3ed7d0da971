import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** What a log line written inside a traced operation or job carries (see setLogContext). */
export interface LogContext {
  requestId?: string;
  traceId?: string;
  spanId?: string;
}

/** Set while tracing is on (src/tracing/tracing.ts): reads the active OpenTelemetry context. */
let activeLogContext: (() => LogContext | undefined) | undefined;

/** Makes every line of every logger carry the fields `read` returns (undefined: off again). */
export function setLogContext(read: (() => LogContext | undefined) | undefined): void {
  activeLogContext = read;
}

const NOTHING: Record<string, never> = Object.freeze({});

/**
 * The active operation's ids, minus those the logger already binds (a request's child logger has
 * its `requestId`, and `traceId`/`spanId` once traced), so no key is written twice.
 */
function contextFields(_mergeObject: object, _level: number, logger: Logger): object {
  const fields = activeLogContext?.();
  if (!fields) return NOTHING;
  const bound = (logger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '';
  const line: LogContext = {};
  if (fields.requestId !== undefined && !bound.includes('"requestId":')) line.requestId = fields.requestId;
  if (fields.traceId !== undefined && !bound.includes('"traceId":')) {
    line.traceId = fields.traceId;
    line.spanId = fields.spanId;
  }
  return line;
}

/**
 * Structured JSON logs on stdout (or `destination`); every request logs through a child carrying
 * its `requestId`. With tracing on, every line written inside an operation or a job, whichever
 * logger wrote it, carries the request id and the trace and span ids of the active span.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'kocmoc' },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin: contextFields,
      // The shared empty object is never written to.
      mixinMergeStrategy: (mergeObject, mixinObject) => (mixinObject === NOTHING ? mergeObject : Object.assign(mixinObject, mergeObject)),
    },
    destination as DestinationStream,
  );
}
