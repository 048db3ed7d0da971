// Reads on the live-event paths outlast a short database outage: they are tried again with backoff
// until a bound, then give up with UNAVAILABLE, which tells a subscriber to resubscribe from its
// last seq. Never a silent skip, never a subscription that hangs without end.
import { unavailable } from '../errors.ts';

/** The wait after the `failures`-th failed attempt: 50 ms, doubling, at most 1 s. */
export const backoffMs = (failures: number) => Math.min(50 * 2 ** Math.max(0, failures - 1), 1_000);

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Client errors (ours, with a code) are answers, not failures: trying again changes nothing. By name, as in error-logging.ts. */
export const isRetryable = (error: unknown) => !(error instanceof Error && error.name === 'GraphQLError');

/** What a subscription ends with when its reads kept failing. */
export const readsUnavailable = () =>
  unavailable('Live events are delayed (the database is out of reach): resubscribe with sinceSeq set to the last seq you received.');

export interface RetryOptions {
  /** Gives up this long after the first attempt started, an attempt still running included. */
  timeoutMs: number;
  /** Checked before each further attempt: once true (the subscriber left), the last failure is thrown. */
  stopped?: () => boolean;
  /** Whether a failure is worth another attempt. Default: anything but a client error. */
  retryable?: (error: unknown) => boolean;
}

/** Runs `attempt` until it succeeds; see the file comment. Gives up with `readsUnavailable()`. */
export async function retrying<T>(attempt: () => Promise<T>, { timeoutMs, stopped, retryable = isRetryable }: RetryOptions): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = readsUnavailable();
  const expired = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(expiry), timeoutMs)));
  expired.catch(() => {});
  try {
    for (let failures = 1; ; failures++) {
      const running = attempt();
      // Left behind when the bound passes first; its failure then matters to no one.
      running.catch(() => {});
      try {
        return await Promise.race([running, expired]);
      } catch (error) {
        if (error === expiry || !retryable(error) || stopped?.()) throw error;
      }
      await Promise.race([sleep(backoffMs(failures)), expired]);
      if (stopped?.()) throw expiry;
    }
  } finally {
    clearTimeout(timer);
  }
}
