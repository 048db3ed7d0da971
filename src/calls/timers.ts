// Call deadlines: when ringing stops, and when a device that dropped out of a call has been away
// too long. With Redis they are BullMQ delayed jobs (they survive a restart, and any API instance
// runs them once); without, in-process timers. Either way the deadlines are also in PostgreSQL
// (Call.ringUntil, CallParticipant.disconnectedAt), and `start` schedules every pending one again,
// so a restart (even one that lost Redis) still ends calls on time. Handlers re-check the database,
// so a deadline that fires twice, or late, does no harm.
import { openBullQueue } from '../redis/bull-queue.ts';
import { jobRequestId, runLocalJob } from '../tracing/jobs.ts';
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import type { Tracer } from '@opentelemetry/api';

export const CALL_TIMER_QUEUE = 'kocmoc-call-timers';

export type CallJob =
  /** Ringing may be over: the call rings until `ringUntil` (or a silenced call declines earlier). */
  | { kind: 'ring'; callId: string }
  /** A participant's device dropped at `disconnectedAt`; it leaves unless it came back. */
  | { kind: 'reconnect'; callId: string; participantId: string };

export type CallJobRunner = (job: CallJob) => Promise<void>;

export interface CallTimers {
  readonly distributed: boolean;
  /** Runs `job` at `at` (at once if that is past); the same job for the same instant is scheduled once. */
  schedule(job: CallJob, at: Date): Promise<void>;
  /** Starts running jobs with `run`, after scheduling every deadline PostgreSQL still holds. */
  start(run: CallJobRunner): Promise<void>;
  stop(): Promise<void>;
}

export interface CallTimersOptions {
  prisma: PrismaClient;
  logger: Logger;
  redisUrl?: string;
  /** Redis key prefix (JOB_QUEUE_PREFIX). */
  prefix: string;
  reconnectMs: number;
  /** With tracing on: each deadline runs in a `job ring` or `job reconnect` span. Default none. */
  tracer?: Tracer;
}

const ATTEMPTS = 5;

/** BullMQ ids may not contain ':'. One id per job and instant, so rescheduling the same deadline is a no-op. */
function jobId(job: CallJob, at: Date): string {
  return job.kind === 'ring' ? `ring-${job.callId}-${at.getTime()}` : `reconnect-${job.participantId}-${at.getTime()}`;
}

export function createCallTimers(options: CallTimersOptions): CallTimers {
  const backend = options.redisUrl ? bullBackend(options.redisUrl, options) : localBackend(options);
  return {
    distributed: backend.distributed,
    schedule: (job, at) => backend.schedule(jobId(job, at), job, at),
    async start(run) {
      backend.start(run);
      await recover(options, (job, at) => backend.schedule(jobId(job, at), job, at));
    },
    stop: () => backend.stop(),
  };
}

/** Schedules the deadlines of every call still ringing and every device still away. */
async function recover({ prisma, reconnectMs, logger }: CallTimersOptions, schedule: (job: CallJob, at: Date) => Promise<void>) {
  const [ringing, away] = await Promise.all([
    prisma.call.findMany({ where: { state: 'RINGING' }, select: { id: true, ringUntil: true } }),
    prisma.callParticipant.findMany({
      where: { leftAt: null, disconnectedAt: { not: null }, call: { state: { not: 'ENDED' } } },
      select: { id: true, callId: true, disconnectedAt: true },
    }),
  ]);
  await Promise.all([
    ...ringing.map((call) => schedule({ kind: 'ring', callId: call.id }, call.ringUntil)),
    ...away.map((p) => schedule({ kind: 'reconnect', callId: p.callId, participantId: p.id }, new Date(p.disconnectedAt!.getTime() + reconnectMs))),
  ]);
  if (ringing.length + away.length > 0) logger.info({ ringing: ringing.length, away: away.length }, 'recovered call deadlines');
}

interface Backend {
  distributed: boolean;
  schedule(id: string, job: CallJob, at: Date): Promise<void>;
  start(run: CallJobRunner): void;
  stop(): Promise<void>;
}

function bullBackend(redisUrl: string, { prefix, logger, tracer }: CallTimersOptions): Backend {
  const { queue, startWorker, close } = openBullQueue({ redisUrl, name: CALL_TIMER_QUEUE, prefix, logger, label: 'call timer', tracer });
  return {
    distributed: true,
    async schedule(id, job, at) {
      await queue.add(job.kind, job, {
        jobId: id,
        delay: Math.max(0, at.getTime() - Date.now()),
        attempts: ATTEMPTS,
        backoff: { type: 'exponential', delay: 500 },
        removeOnComplete: { age: 3600 },
        removeOnFail: { age: 24 * 3600 },
      });
    },
    start(run) {
      startWorker((job) => run(job.data as CallJob), { concurrency: 16 });
    },
    stop: close,
  };
}

function localBackend({ logger, tracer }: CallTimersOptions): Backend {
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  let runner: CallJobRunner | undefined;
  let stopped = false;

  const fire = (id: string, job: CallJob, attempt: number) => {
    timers.delete(id);
    if (stopped || !runner) return;
    const run: Promise<void> = runLocalJob(tracer, { queue: CALL_TIMER_QUEUE, name: job.kind, id, attempt: attempt + 1 }, () => runner!(job))
      .catch((error: unknown) => {
        logger.warn({ requestId: jobRequestId(CALL_TIMER_QUEUE, id), jobId: id, attempt, err: error }, 'call timer failed');
        if (attempt + 1 < ATTEMPTS && !stopped) timers.set(id, setTimeout(() => fire(id, job, attempt + 1), 500 * 2 ** attempt));
      })
      .finally(() => running.delete(run));
    running.add(run);
  };

  return {
    distributed: false,
    async schedule(id, job, at) {
      if (stopped || timers.has(id)) return;
      timers.set(id, setTimeout(() => fire(id, job, 0), Math.max(0, at.getTime() - Date.now())));
    },
    start(run) {
      runner = run;
    },
    async stop() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      await Promise.allSettled([...running]);
    },
  };
}
