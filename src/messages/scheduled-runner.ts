// When scheduled messages run: BullMQ delayed jobs on Redis (they survive restarts; whichever API
// instance is up takes a due job), or, without Redis, timers in this process. Either way the rows
// are the truth: a sweep on start and every few minutes hands every schedule due soon to the
// runner again, so jobs lost with Redis, or timers lost with a restart, still run, late.
// Running twice is harmless: the run claims the row, and sends with the row's own client id.
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from '../logger.ts';
import { openBullQueue } from '../redis/bull-queue.ts';
import { jobRequestId, runLocalJob } from '../tracing/jobs.ts';

export const SCHEDULED_QUEUE_NAME = 'kocmoc-scheduled-messages';
/** Longest single timer Node keeps (2^31 - 1 ms, ~24.8 days); longer waits are re-armed by the sweep. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const RUN_ATTEMPTS = 8;
const RETRY_BASE_MS = 1_000;

export type RunScheduled = (id: string) => Promise<void>;

export interface ScheduledRunner {
  /** Whether jobs wait in Redis. */
  readonly distributed: boolean;
  /** Runs `id` at `sendAt` (now if it passed). Idempotent per (id, sendAt); a rescheduled one just gets another run. */
  schedule(id: string, sendAt: Date): Promise<void>;
  start(run: RunScheduled): Promise<void>;
  stop(): Promise<void>;
}

export interface ScheduledRunnerOptions {
  redisUrl?: string;
  prefix: string;
  logger: Logger;
  /** With tracing on: each run is a `job send` span. Default none. */
  tracer?: Tracer;
}

/** One job per schedule and send time: a reschedule is a new job, and the old one finds the row moved on. */
const jobId = (id: string, sendAt: Date) => `scheduled-${id}-${sendAt.getTime()}`;

export function createScheduledRunner({ redisUrl, prefix, logger, tracer }: ScheduledRunnerOptions): ScheduledRunner {
  return redisUrl ? bullRunner(redisUrl, prefix, logger, tracer) : localRunner(logger, tracer);
}

function bullRunner(redisUrl: string, prefix: string, logger: Logger, tracer: Tracer | undefined): ScheduledRunner {
  const { queue, startWorker, close } = openBullQueue({ redisUrl, name: SCHEDULED_QUEUE_NAME, prefix, logger, label: 'scheduled message', tracer });
  return {
    distributed: true,
    async schedule(id, sendAt) {
      await queue.add('send', { id }, {
        jobId: jobId(id, sendAt),
        delay: Math.max(0, sendAt.getTime() - Date.now()),
        attempts: RUN_ATTEMPTS,
        backoff: { type: 'exponential', delay: RETRY_BASE_MS },
        removeOnComplete: { age: 24 * 3600 },
        removeOnFail: { age: 7 * 24 * 3600 },
      });
    },
    async start(run) {
      startWorker((job) => run((job.data as { id: string }).id), { concurrency: 4 });
    },
    stop: close,
  };
}

function localRunner(logger: Logger, tracer: Tracer | undefined): ScheduledRunner {
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  let run: RunScheduled | undefined;
  let stopped = false;

  const attempt = (key: string, id: string, tries: number) => {
    const done = runLocalJob(tracer, { queue: SCHEDULED_QUEUE_NAME, name: 'send', id: key, attempt: tries + 1 }, () => run!(id))
      .then(() => void timers.delete(key))
      .catch((error: unknown) => {
        logger.warn({ requestId: jobRequestId(SCHEDULED_QUEUE_NAME, key), scheduledMessageId: id, err: error }, 'scheduled message run failed');
        if (tries + 1 < RUN_ATTEMPTS && !stopped) arm(key, id, RETRY_BASE_MS * 2 ** tries, tries + 1);
        else timers.delete(key);
      })
      .finally(() => running.delete(done));
    running.add(done);
  };
  const arm = (key: string, id: string, delayMs: number, tries = 0) => {
    // Past the longest timer the sweep re-arms it when it comes within reach.
    if (delayMs > MAX_TIMER_MS) return;
    const timer = setTimeout(() => attempt(key, id, tries), delayMs);
    timer.unref();
    timers.set(key, timer);
  };

  return {
    distributed: false,
    async schedule(id, sendAt) {
      const key = jobId(id, sendAt);
      if (stopped || timers.has(key)) return;
      arm(key, id, Math.max(0, sendAt.getTime() - Date.now()));
    },
    async start(runner) {
      run = runner;
    },
    async stop() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await Promise.all([...running]);
    },
  };
}
