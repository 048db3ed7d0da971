// Where notification jobs wait: a BullMQ queue on Redis (survives restarts; any worker process
// takes jobs, and a worker that dies mid-job has it taken over), or, without Redis, an in-process
// runner with the same job ids, retries and backoff. With tracing on, either runs each job in its
// `job <name>` span (src/tracing/jobs.ts).
import type { Tracer } from '@opentelemetry/api';
import { Queue, UnrecoverableError, Worker, type JobsOptions, type Processor } from 'bullmq';
import { connectRedis, slotPrefix } from '../redis/connection.ts';
import type { Logger } from '../logger.ts';
import { jobRequestId, runLocalJob, traceBullJobs } from '../tracing/jobs.ts';
import type { CallDeliveryJob, CallFanOutJob } from './call-pushes.ts';
import { PermanentJobError, type DeliveryJob, type FanOutJob, type MentionFanOutJob } from './jobs.ts';

export const QUEUE_NAME = 'kocmoc-notifications';
/** Attempts per job before it is given up (exponential backoff from RETRY_BASE_MS: ~1 s … ~2 min). */
export const JOB_ATTEMPTS = 8;
export const RETRY_BASE_MS = 1_000;

export type JobName = 'fan-out' | 'mention-fan-out' | 'deliver' | 'call-fan-out' | 'call-deliver';
export interface JobData {
  'fan-out': FanOutJob;
  'mention-fan-out': MentionFanOutJob;
  deliver: DeliveryJob;
  'call-fan-out': CallFanOutJob;
  'call-deliver': CallDeliveryJob;
}
export type JobProcessor = <N extends JobName>(name: N, data: JobData[N]) => Promise<unknown>;

export interface NotificationQueue {
  /** Whether jobs go through Redis (a separate worker process runs them). */
  readonly distributed: boolean;
  add<N extends JobName>(name: N, jobs: Array<{ id: string; data: JobData[N] }>, options?: { delayMs?: number }): Promise<void>;
  /** Jobs waiting, delayed or running. */
  depth(): Promise<number>;
  close(): Promise<void>;
}

/** Job ids make enqueueing idempotent: the same message or (message, device) is queued once. */
export const jobIds = {
  fanOut: (messageId: string) => `fanout-${messageId}`,
  /** An edit's new mentions: once per edit. */
  mentionFanOut: (editId: string) => `mention-fanout-${editId}`,
  deliver: (job: DeliveryJob) => `push-${job.messageId}-${job.subscriptionId}${job.editId ? `-${job.editId}` : ''}`,
  /** A call's pushes of one kind: once per call (ringing) or per member who missed it. */
  callFanOut: (callId: string, event: string, userId?: string) => `call-${event}-${callId}${userId ? `-${userId}` : ''}`,
  callDeliver: (job: CallDeliveryJob) => `call-${job.event}-${job.callId}-${job.subscriptionId}`,
};

const jobOptions = (id: string, delayMs = 0): JobsOptions => ({
  jobId: id,
  delay: delayMs,
  attempts: JOB_ATTEMPTS,
  backoff: { type: 'exponential', delay: RETRY_BASE_MS },
  // Completed ids are kept a day so a re-enqueue of the same message is still recognised.
  removeOnComplete: { age: 24 * 3600, count: 100_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
});

export function createBullQueue(redisUrl: string, logger: Logger, prefix = 'kocmoc'): NotificationQueue {
  const connection = connectRedis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(QUEUE_NAME, { connection, prefix: slotPrefix(redisUrl, prefix) });
  // Without a listener BullMQ prints each connection error of a Redis outage to stderr.
  queue.on('error', (error) => logger.warn({ err: error }, 'notification queue error'));
  return {
    distributed: true,
    async add(name, jobs, options = {}) {
      if (jobs.length === 0) return;
      await queue.addBulk(jobs.map((job) => ({ name, data: job.data, opts: jobOptions(job.id, options.delayMs) })));
    },
    async depth() {
      const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'prioritized', 'waiting-children');
      return Object.values(counts).reduce((sum, n) => sum + n, 0);
    },
    async close() {
      await queue.close();
      await connection.quit().catch(() => {});
    },
  };
}

export interface WorkerOptions {
  redisUrl: string;
  prefix?: string;
  process: JobProcessor;
  logger: Logger;
  /** Jobs run at once. */
  concurrency: number;
  /** A job whose worker stops renewing its lock for this long is taken over by another worker. */
  lockDurationMs: number;
  /** With tracing on: each job runs in a `job <name>` span. Default none. */
  tracer?: Tracer;
}

/** A BullMQ worker for the notification queue. `close()` lets running jobs finish first. */
export function startBullWorker({ redisUrl, prefix = 'kocmoc', process, logger, concurrency, lockDurationMs, tracer }: WorkerOptions) {
  const connection = connectRedis(redisUrl, { maxRetriesPerRequest: null });
  const run: Processor = async (job) => {
    try {
      return await process(job.name as JobName, job.data);
    } catch (error) {
      // Tell BullMQ not to retry what cannot succeed.
      if (error instanceof PermanentJobError) throw new UnrecoverableError(error.message);
      throw error;
    }
  };
  const worker = new Worker(QUEUE_NAME, traceBullJobs(tracer, QUEUE_NAME, run), {
    connection,
    prefix: slotPrefix(redisUrl, prefix),
    concurrency,
    lockDuration: lockDurationMs,
    stalledInterval: Math.max(1_000, lockDurationMs / 2),
    maxStalledCount: 3,
  });
  // Emitted once the job's span has ended: the request id its own lines carried is written here.
  worker.on('failed', (job, error) =>
    logger.warn({ requestId: jobRequestId(QUEUE_NAME, job?.id), jobId: job?.id, attempts: job?.attemptsMade, err: error }, 'notification job failed'),
  );
  worker.on('error', (error) => logger.warn({ err: error }, 'notification worker error'));
  return {
    worker,
    async close() {
      await worker.close();
      await connection.quit().catch(() => {});
    },
  };
}

/**
 * Without Redis: runs jobs in this process, with the same ids (a job id is run once), delays,
 * retries and backoff. Jobs do not survive a restart; the outbox re-enqueues messages whose fan-out
 * had not been handed over.
 */
export function createLocalQueue(process: JobProcessor, logger: Logger, tracer?: Tracer): NotificationQueue {
  const known = new Set<string>();
  const timers = new Set<NodeJS.Timeout>();
  const running = new Set<Promise<unknown>>();
  let closed = false;

  const schedule = <N extends JobName>(name: N, id: string, data: JobData[N], delayMs: number, attempt: number) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      const run = runLocalJob(tracer, { queue: QUEUE_NAME, name, id, attempt: attempt + 1 }, () => process(name, data))
        .then(() => setTimeout(() => known.delete(id), 24 * 3600 * 1000).unref())
        .catch((error: unknown) => {
          const last = attempt + 1 >= JOB_ATTEMPTS || error instanceof PermanentJobError;
          logger.warn({ requestId: jobRequestId(QUEUE_NAME, id), jobId: id, attempt: attempt + 1, err: error }, last ? 'notification job gave up' : 'notification job failed, retrying');
          if (!last && !closed) schedule(name, id, data, RETRY_BASE_MS * 2 ** attempt, attempt + 1);
        })
        .finally(() => running.delete(run));
      running.add(run);
    }, delayMs);
    timers.add(timer);
  };

  return {
    distributed: false,
    async add(name, jobs, options = {}) {
      for (const job of jobs) {
        if (closed || known.has(job.id)) continue;
        known.add(job.id);
        schedule(name, job.id, job.data, options.delayMs ?? 0, 0);
      }
    },
    async depth() {
      return timers.size + running.size;
    },
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      await Promise.allSettled([...running]);
    },
  };
}
