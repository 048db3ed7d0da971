// A push-based async iterator for subscriptions, live before it is returned.
import { unavailable } from '../errors.ts';

/** Events buffered for a subscriber that reads slower than they arrive; past this it is cut off. */
export const STREAM_BUFFER_MAX = 1_000;

/**
 * What a subscriber too far behind is cut off with: here, or with its socket's frames backed up
 * (shared-frames.ts). UNAVAILABLE: the client resubscribes from the last seq it got and catches up.
 */
export const tooManyUndelivered = () => unavailable('Too many undelivered events: resubscribe with sinceSeq set to the last seq you received.');

export interface StreamControls<T> {
  emit(value: T): void;
  /** Ends the stream with an error: the subscriber gets it (events already queued first), and nothing after. */
  fail(error: unknown): void;
  /**
   * Runs steps one after another, so events keep their order while steps await the database. A
   * step that returns nothing is done; with nothing queued before it, it runs at once (most
   * deliveries: their checks answer from kept state). Once the subscriber is gone, steps still
   * queued never run.
   */
  enqueue(step: () => void | Promise<void>): void;
  /** The subscriber is gone (or the stream failed): a running step should start no more database work. */
  readonly closed: boolean;
}

const DONE = { value: undefined, done: true } as const;

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
  /** The reader's pending next(), while the queue is empty: an event goes straight to it. */
  let reader: { resolve(result: IteratorResult<T>): void; reject(error: unknown): void } | undefined;
  let cleanup: (() => void) | undefined;
  let steps: Promise<void> = Promise.resolve();
  /** Steps queued or running. */
  let pending = 0;

  const takeReader = () => {
    const waiting = reader;
    reader = undefined;
    return waiting;
  };
  const finish = () => {
    if (finished) return;
    finished = true;
    queue.length = 0;
    cleanup?.();
    takeReader()?.resolve(DONE);
  };
  const stepDone = () => void pending--;
  const stepFailed = (error: unknown) => {
    pending--;
    controls.fail(error);
  };
  const controls: StreamControls<T> = {
    emit(value) {
      if (finished || failure) return;
      const waiting = takeReader();
      if (waiting) return waiting.resolve({ value, done: false });
      if (queue.length >= STREAM_BUFFER_MAX) {
        controls.fail(tooManyUndelivered());
        return;
      }
      queue.push(value);
    },
    fail(error) {
      if (finished || failure) return;
      failure = { error };
      const waiting = takeReader();
      if (waiting) {
        finish();
        waiting.reject(error);
      }
    },
    enqueue(step) {
      if (pending === 0) {
        let running: void | Promise<void>;
        try {
          running = controls.closed ? undefined : step();
        } catch (error) {
          controls.fail(error);
          return;
        }
        if (!running) return;
        pending++;
        steps = running.then(stepDone, stepFailed);
        return;
      }
      pending++;
      steps = steps.then(() => (controls.closed ? undefined : step())).then(stepDone, stepFailed);
    },
    get closed() {
      return finished || failure !== undefined;
    },
  };

  cleanup = await start(controls);
  if (finished) cleanup();

  const iterator: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => iterator,
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift()!, done: false });
      if (failure) {
        const { error } = failure;
        finish();
        return Promise.reject(error);
      }
      if (finished) return Promise.resolve(DONE);
      return new Promise<IteratorResult<T>>((resolve, reject) => (reader = { resolve, reject }));
    },
    async return() {
      finish();
      await steps;
      return DONE;
    },
    async throw(error?: unknown) {
      finish();
      await steps;
      throw error;
    },
  };
  return iterator;
}
