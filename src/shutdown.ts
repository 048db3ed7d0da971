// Shutting down within SHUTDOWN_TIMEOUT: an orchestrator kills a process that outlasts its grace
// period (Docker 10 s, Kubernetes 30 s by default), and with it whatever shutdown had left to save.
import type { Logger } from './logger.ts';

/** Whether `work` resolved within `timeoutMs` (it rejects if `work` rejects first); work still running then is left to run. */
export async function settledWithin(work: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
  try {
    return await Promise.race([work.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Work in progress may run until this share of the budget; the rest is for closing connections, which normally takes far less. */
export const WORK_SHARE = 0.8;

export interface ShutdownBudget {
  /** Milliseconds left until `share` (0–1) of the budget, counted from its start, has passed; 0 once it has. */
  until(share: number): number;
  /** Runs `close` in what is left of the budget; if that runs out first, warns and returns (it keeps running). */
  finish(close: () => Promise<unknown>, logger: Logger): Promise<void>;
}

/** A budget of `totalMs` that starts now; each phase of a shutdown ends at a share of it. */
export function shutdownBudget(totalMs: number): ShutdownBudget {
  // Monotonic: a wall-clock step during shutdown must not stretch or cut the budget.
  const startedAt = performance.now();
  const until = (share: number) => Math.max(0, startedAt + totalMs * share - performance.now());
  return {
    until,
    async finish(close, logger) {
      if (!(await settledWithin(close(), until(1)))) logger.warn('SHUTDOWN_TIMEOUT ran out while closing connections: exiting without waiting further');
    },
  };
}
