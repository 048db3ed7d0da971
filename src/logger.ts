import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout; every request logs through a child carrying its `requestId`. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'kocmoc' }, timestamp: pino.stdTimeFunctions.isoTime });
}
