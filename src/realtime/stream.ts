// A push-based async iterator for subscriptions, live before it is returned.
import { unavailable } from '../errors.ts';

/** Events buffered for a subscriber that reads slower than they arrive; past this it is cut off. */
export const STREAM_BUFFER_MAX = 1_000;

export interface StreamControls<T> {
  emit(value: T): void;
  /** Ends the stream with an error: the subscriber gets it (events already queued first), and nothing after. */
  fail(error: unknown): void;
  /**
   * Runs async steps one after another, so events keep their order while steps await the database.
   * Once the subscriber is gone, steps still queued never run.
   */
  enqueue(step: () => Promise<void>): void;
  /** The subscriber is gone (or the stream failed): a running step should start no more database work. */
  readonly closed: boolean;
}

/**
 * Runs `start`, which begins listening and returns its clean-up, and resolves once listening is
 * live: whatever `start` emits from then on reaches the iterator, in order. `return()` (the client
 * unsubscribed or disconnected) runs the clean-up once, drops undelivered events and resolves once
 * the step running then has settled, so nothing works for the subscriber afterwards.
 */
export async function openStream<T>(start: (controls: StreamControls<T>) => Promise<() => void>): Promise<AsyncIterableIterator<T>> {
  const queue: T[] = [];
  let failure: { error: unknown } | undefined;
  let finished = false;
  let wake: (() => void) | undefined;
  let cleanup: (() => void) | undefined;
  let steps = Promise.resolve();

  const finish = () => {
    if (finished) return;
    finished = true;
    queue.length = 0;
    cleanup?.();
    wake?.();
  };
  const controls: StreamControls<T> = {
    emit(value) {
      if (finished || failure) return;
      if (queue.length >= STREAM_BUFFER_MAX) {
        // UNAVAILABLE: the client resubscribes from the last seq it got and catches up from there.
        controls.fail(unavailable('Too many undelivered events: resubscribe with sinceSeq set to the last seq you received.'));
        return;
      }
      queue.push(value);
      wake?.();
    },
    fail(error) {
      if (finished || failure) return;
      failure = { error };
      wake?.();
    },
    enqueue(step) {
      steps = steps.then(() => (controls.closed ? undefined : step())).catch((error) => controls.fail(error));
    },
    get closed() {
      return finished || failure !== undefined;
    },
  };

  cleanup = await start(controls);
  if (finished) cleanup();

  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => iterator,
    async next() {
      for (;;) {
        if (queue.length > 0) return { value: queue.shift()!, done: false };
        if (failure) {
          const { error } = failure;
          finish();
          throw error;
        }
        if (finished) return { value: undefined, done: true };
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
    async return() {
      finish();
      await steps;
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      finish();
      await steps;
      throw error;
    },
  };
  return iterator;
}
