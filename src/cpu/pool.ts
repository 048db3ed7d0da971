// The Piscina pool that runs CPU-heavy tasks from workers/ off the event loop. It knows nothing of
// GraphQL: a full queue is a WorkerPoolBusyError, which the API answers as RATE_LIMITED.
import { Piscina } from 'piscina';
import type * as tasks from '../../workers/index.ts';

type Tasks = typeof tasks;
export type TaskName = keyof Tasks;
export type TaskInput<N extends TaskName> = Parameters<Tasks[N]>[0];
export type TaskOutput<N extends TaskName> = Awaited<ReturnType<Tasks[N]>>;

export interface WorkerPoolOptions {
  /** Worker threads. Default: the number of cores. */
  threads: number;
  /**
   * Admission bound for tasks run with `{ bounded: true }`: when the work already queued
   * would keep every thread busy for longer than this, new work fails fast with a
   * WorkerPoolBusyError instead of waiting. Default 2000 ms.
   */
  queueMaxMs?: number;
  /** Nice value of the worker threads on Linux (0–19): above 0 the event loop wins a busy core. Default 0. */
  nice?: number;
}

export interface RunOptions {
  /** Refuse with a WorkerPoolBusyError when the queue is over its bound (use for work users can spam). */
  bounded?: boolean;
  transferList?: Transferable[];
}

export type WorkerPool = ReturnType<typeof createWorkerPool>;

/** Bounded work was refused: the queue already holds more than `queueMaxMs` of work per thread. */
export class WorkerPoolBusyError extends Error {
  override name = 'WorkerPoolBusyError';
  /** When the queued work should have drained. */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super('The worker pool is over its queue bound.');
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** A place in the pool's bounded queue for one task (see `reserve`). */
export interface Reservation {
  /** Runs the task the place was reserved for; a reservation runs at most one. */
  run<N extends TaskName>(task: N, input: TaskInput<N>, options?: Omit<RunOptions, 'bounded'>): Promise<TaskOutput<N>>;
  /** Gives the place back without running anything (safe to call after `run`). */
  release(): void;
}

export function createWorkerPool({ threads, queueMaxMs = 2_000, nice = 0 }: WorkerPoolOptions) {
  const piscina = new Piscina({
    filename: new URL('../../workers/entry.mjs', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    workerData: { nice },
  });
  /** Moving average of each task's work (CPU ms for synchronous tasks), learned from completed runs. */
  const costMs = new Map<TaskName, number>();
  /** Estimated milliseconds of work submitted and not finished yet. */
  let pendingMs = 0;
  const taskListeners = new Set<(task: TaskName, ms: number) => void>();

  /** Refuses when queued work would keep every thread busy for longer than the bound. */
  function assertCapacity() {
    if (pendingMs / threads <= queueMaxMs) return;
    throw new WorkerPoolBusyError(Math.ceil(pendingMs / threads / 1_000));
  }

  async function execute<N extends TaskName>(task: N, input: TaskInput<N>, options: RunOptions): Promise<TaskOutput<N>> {
    const { result, ms, workMs } = (await piscina.run(
      { task, input },
      options.transferList ? { transferList: options.transferList as never } : {},
    )) as { result: TaskOutput<N>; ms: number; workMs: number };
    // Work, not wall time: a hash that waited for a core while the event loop ran is no more work.
    const estimate = costMs.get(task);
    costMs.set(task, estimate === undefined ? workMs : estimate * 0.9 + workMs * 0.1);
    for (const listener of taskListeners) listener(task, ms);
    return result;
  }

  /**
   * A place in the queue for one task, counted as `costOf`'s estimated work until the task ends or
   * the place is released. With `bounded`, refuses (WorkerPoolBusyError) when the queue is over its bound.
   */
  function takePlace(costOf: TaskName, bounded: boolean): Reservation {
    if (bounded) assertCapacity();
    const estimate = costMs.get(costOf) ?? 0;
    pendingMs += estimate;
    let held = true;
    let used = false;
    const release = () => {
      if (!held) return;
      held = false;
      pendingMs -= estimate;
    };
    async function runInPlace<N extends TaskName>(task: N, input: TaskInput<N>, options: RunOptions = {}): Promise<TaskOutput<N>> {
      if (used) throw new Error('A reservation runs one task.');
      used = true;
      try {
        return await execute(task, input, options);
      } finally {
        release();
      }
    }
    return { run: runInPlace, release };
  }

  async function run<N extends TaskName>(task: N, input: TaskInput<N>, options: RunOptions = {}): Promise<TaskOutput<N>> {
    return takePlace(task, options.bounded === true).run(task, input, options);
  }

  /**
   * Takes a place in the bounded queue now, for one task whose input is not ready yet (a login
   * reserves its verification before looking the user up). Under overload this refuses at once,
   * before any other work; the reserved cost counts against the bound until the task ends or
   * `release` is called.
   */
  const reserve = (costOf: TaskName): Reservation => takePlace(costOf, true);

  return {
    run,
    reserve,
    threads,
    /** Tasks waiting for a free thread. */
    get queueSize() {
      return piscina.queueSize;
    },
    /** Learned work of one run of a task in milliseconds (CPU time for synchronous tasks; 0 before its first run). */
    costOf: (task: TaskName) => costMs.get(task) ?? 0,
    /** Calls `listener` with each completed task's run time (metrics); returns the unsubscribe. */
    onTaskDone(listener: (task: TaskName, ms: number) => void) {
      taskListeners.add(listener);
      return () => void taskListeners.delete(listener);
    },
    close: () => piscina.close(),
  };
}
