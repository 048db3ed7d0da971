// Reads on the live-event paths outlast a short database outage: they are tried again with backoff
// until a bound, then give up with UNAVAILABLE, which tells a subscriber to resubscribe from its
// last seq. Never a silent skip, never a subscription that hangs without end.
//
// Out of reach is not the same as busy: a read queued for a pooled connection behind thousands of
// others (a subscription storm on one large chat) waits while the database answers them. With
// `answers`, the bound passing while an attempt waits and the database has answered anything since
// the bound started starts the bound over; only a bound without a single answer, or failures, end it.
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
  /** Statements the database has answered so far (db/client.ts databaseAnswers): see the file comment. Default: none, a fixed bound. */
  answers?: () => number;
}

/** Runs `attempt` until it succeeds; see the file comment. Gives up with `readsUnavailable()`. */
export async function retrying<T>(attempt: () => Promise<T>, { timeoutMs, stopped, retryable = isRetryable, answers }: RetryOptions): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let waiting = false;
  const expiry = readsUnavailable();
  const expired = new Promise<never>((_resolve, reject) => {
    const arm = () => {
      const seen = answers?.();
      timer = setTimeout(() => (waiting && answers && answers() !== seen ? arm() : reject(expiry)), timeoutMs);
    };
    arm();
  });
  expired.catch(() => {});
  try {
    for (let failures = 1; ; failures++) {
      const running = attempt();
      // Left behind when the bound passes first; its failure then matters to no one.
      running.catch(() => {});
      waiting = true;
      try {
        return await Promise.race([running, expired]);
      } catch (error) {
        if (error === expiry || !retryable(error) || stopped?.()) throw error;
      } finally {
        waiting = false;
      }
      await Promise.race([sleep(backoffMs(failures)), expired]);
      if (stopped?.()) throw expiry;
    }
  } finally {
    clearTimeout(timer);
  }
}
