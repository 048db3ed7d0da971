// Work that has to settle before what it uses is closed: shutdown waits for requests, subscription
// set-ups and endings before it ends the database pool under them.
import { settledWithin } from './shutdown.ts';

export interface InFlight {
  /** Counts `work` until it settles, and returns it unchanged. */
  track<T>(work: Promise<T>): Promise<T>;
  /** Whether nothing tracked runs any more (work tracked meanwhile included) within `timeoutMs`. */
  settled(timeoutMs: number): Promise<boolean>;
}

export function createInFlight(): InFlight {
  const running = new Set<Promise<unknown>>();
  const idle = async () => {
    while (running.size > 0) await Promise.all(running);
  };
  return {
    track(work) {
      const done: Promise<unknown> = work.then(
        () => running.delete(done),
        () => running.delete(done),
      );
      running.add(done);
      return work;
    },
    settled: (timeoutMs) => settledWithin(idle(), timeoutMs),
  };
}
