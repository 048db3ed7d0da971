// A BullMQ queue of this process and, once started, its worker: each on a connection of its own
// (BullMQ blocks the worker's), on one Redis or a Redis Cluster (connectRedis), under a prefix kept
// in one hash slot (slotPrefix) as BullMQ requires on a cluster. Their errors are logged, not thrown.
// With tracing on, each job runs in its `job <name>` span (src/tracing/jobs.ts).
import type { Tracer } from '@opentelemetry/api';
import { Queue, Worker, type Processor, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import { jobRequestId, traceBullJobs } from '../tracing/jobs.ts';
import { connectRedis, slotPrefix } from './connection.ts';

export interface BullQueueOptions {
  redisUrl: string;
  name: string;
  /** Key prefix (JOB_QUEUE_PREFIX); hash-tagged on a cluster. */
  prefix: string;
  logger: Logger;
  /** What the log lines call it: "<label> queue error", "<label> job failed", "<label> worker error". */
  label: string;
  /** With tracing on: each job runs in a `job <name>` span. Default none (the processor runs as given). */
  tracer?: Tracer;
}

export interface BullQueue {
  queue: Queue;
  /** Starts the worker taking this queue's jobs (once). */
  startWorker(process: Processor, options: Pick<WorkerOptions, 'concurrency' | 'lockDuration'>): void;
  /** Closes the worker (letting the job in progress finish), the queue and both connections. */
  close(): Promise<void>;
}

export function openBullQueue({ redisUrl, name, prefix, logger, label, tracer }: BullQueueOptions): BullQueue {
  const bullPrefix = slotPrefix(redisUrl, prefix);
  const connection = connectRedis(redisUrl, { maxRetriesPerRequest: null });
  connection.on('error', (error) => logger.warn({ err: error }, `redis error (${label})`));
  const queue = new Queue(name, { connection, prefix: bullPrefix });
  queue.on('error', (error) => logger.warn({ err: error }, `${label} queue error`));
  let worker: Worker | undefined;
  let workerConnection: Redis | undefined;
  return {
    queue,
    startWorker(process, options) {
      if (worker) return;
      workerConnection = connectRedis(redisUrl, { maxRetriesPerRequest: null });
      workerConnection.on('error', (error) => logger.warn({ err: error }, `redis error (${label} worker)`));
      worker = new Worker(name, traceBullJobs(tracer, name, process), { connection: workerConnection, prefix: bullPrefix, ...options });
      // Emitted once the job's span has ended: the request id its own lines carried is written here.
      worker.on('failed', (job, error) => logger.warn({ requestId: jobRequestId(name, job?.id), jobId: job?.id, attempts: job?.attemptsMade, err: error }, `${label} job failed`));
      worker.on('error', (error) => logger.warn({ err: error }, `${label} worker error`));
    },
    async close() {
      await worker?.close();
      await queue.close();
      await Promise.allSettled([workerConnection?.quit(), connection.quit()]);
    },
  };
}
