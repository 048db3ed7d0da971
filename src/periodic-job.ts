// A clean-up that runs every so often on every instance (unused uploads, ended sessions).
import type { Logger } from './logger.ts';

export interface PeriodicJob {
  intervalMs: number;
  /** Does one round of work; returns how many things it removed. */
  run: () => Promise<number>;
  /** Logged with `{ deleted }` after a round that removed something. */
  doneMessage: string;
  /** Logged with the error when a round fails; the next round tries again. */
  failedMessage: string;
}

/**
 * Runs the job every interval; the returned function stops the timer and waits for a round in
 * progress (so shutdown does not pull the database from under it). Failures are logged, not thrown,
 * and the timer never keeps the process alive.
 */
export function startPeriodicJob(logger: Logger, { intervalMs, run, doneMessage, failedMessage }: PeriodicJob): () => Promise<void> {
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    // A round that outlasts the interval is not stacked on.
    running ??= run()
      .then((deleted) => {
        if (deleted > 0) logger.info({ deleted }, doneMessage);
      })
      .catch((error: unknown) => logger.warn({ err: error }, failedMessage))
      .finally(() => {
        running = undefined;
      });
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
