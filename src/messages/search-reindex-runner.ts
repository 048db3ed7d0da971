// Where the re-index after a key rotation (src/messages/search-reindex.ts) runs: with Redis, one
// BullMQ job per target key (its job id), so one instance at a time walks the index and another
// takes over if it dies; without Redis, in this process. Either way the SearchReindex row is the
// truth: a check on start and every minute hands an unfinished pass to the runner again.
import type { Tracer } from '@opentelemetry/api';
import { openBullQueue } from '../redis/bull-queue.ts';
import { jobRequestId, runLocalJob } from '../tracing/jobs.ts';
import { runReindexPass, type BatchResult, type ReindexServices } from './search-reindex.ts';

export const REINDEX_QUEUE_NAME = 'kocmoc-search-reindex';
const CHECK_INTERVAL_MS = 60_000;
/** A lock a worker renews while it walks; on its death another takes over after this long. */
const LOCK_MS = 30_000;

export interface ReindexProgress {
  /** Entries this instance rewrote under the current key since it started. */
  rewritten: number;
  /** Entries this instance walked. */
  walked: number;
  /** 1 once this instance saw every readable entry under the current key. */
  finished: number;
}

export interface ReindexRunnerOptions {
  redisUrl?: string;
  prefix: string;
  batchSize: number;
  pauseMs: number;
  /** With tracing on: each pass is a `job reindex` span. Default none. */
  tracer?: Tracer;
}

export interface SearchReindexer {
  progress: ReindexProgress;
  stop(): Promise<void>;
}

/** Starts the re-index (nothing to do when the index is already on the current key) and its check. */
export function startSearchReindex(services: ReindexServices, options: ReindexRunnerOptions): SearchReindexer {
  const { logger } = services;
  const progress: ReindexProgress = { rewritten: 0, walked: 0, finished: 0 };
  const stopping = new AbortController();
  const pass = async () => {
    const outcome = await runReindexPass(services, {
      batchSize: options.batchSize,
      pauseMs: options.pauseMs,
      signal: stopping.signal,
      onBatch: (batch: BatchResult) => {
        progress.rewritten += batch.rewritten;
        progress.walked += batch.walked;
      },
    });
    if (outcome === 'finished') progress.finished = 1;
    return outcome;
  };
  const keyId = services.config.messageEncryption.currentKeyId;
  const jobId = `reindex-${keyId}`;

  let handOver: () => Promise<void>;
  let close: () => Promise<void>;
  if (options.redisUrl) {
    const bull = openBullQueue({ redisUrl: options.redisUrl, name: REINDEX_QUEUE_NAME, prefix: options.prefix, logger, label: 'search re-index', tracer: options.tracer });
    // A job for another key comes from an instance configured otherwise (a rollout): its own instances run it.
    bull.startWorker(async (job) => ((job.data as { keyId: string }).keyId === keyId ? pass() : 'skipped'), { concurrency: 1, lockDuration: LOCK_MS });
    // One job id per key: while one waits or runs, adding it again is a no-op.
    handOver = async () => {
      await bull.queue.add('reindex', { keyId }, { jobId, removeOnComplete: true, removeOnFail: true });
    };
    close = bull.close;
  } else {
    let running: Promise<unknown> | undefined;
    handOver = async () => {
      running ??= runLocalJob(options.tracer, { queue: REINDEX_QUEUE_NAME, name: 'reindex', id: jobId, attempt: 1 }, pass)
        .catch((error: unknown) => logger.warn({ requestId: jobRequestId(REINDEX_QUEUE_NAME, jobId), err: error }, 'search re-index failed'))
        .finally(() => (running = undefined));
    };
    close = async () => {
      await running;
    };
  }

  const check = async () => {
    if (progress.finished || stopping.signal.aborted) return;
    const state = await services.prisma.searchReindex.findUnique({ where: { keyId }, select: { finishedAt: true } });
    if (state?.finishedAt) progress.finished = 1;
    else await handOver();
  };
  const checked = (): Promise<void> => check().catch((error: unknown) => logger.warn({ err: error }, 'search re-index check failed'));
  let checking = checked();
  const timer = setInterval(() => (checking = checking.then(checked)), CHECK_INTERVAL_MS);
  timer.unref();
  return {
    progress,
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await checking;
      await close();
    },
  };
}
