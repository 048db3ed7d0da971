// The span a background job runs in while tracing is on, whichever process and queue runs it: a
// `job <name>` root span (job payloads carry no trace context, so the request that queued the job
// is not linked) whose context also holds the job's request id, so every log line written inside
// the job carries both. Callers pass the tracer they were given, or none: with tracing off the job
// runs as it is, nothing is wrapped (and @opentelemetry/api is only the no-op API, never the SDK).
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { Processor } from 'bullmq';
import { withRequestId } from './tracing.ts';

/**
 * The `requestId` of a job's log lines (and of its 'job failed' line): `job:<queue>:<jobId>`.
 * Job ids name what the job is about (`fanout-<messageId>`, `scheduled-<id>-<sendAt>`,
 * `ring-<callId>-<at>`), so no request id of the request that queued it rides in the payload.
 */
export const jobRequestId = (queue: string, jobId: string | undefined): string => `job:${queue}:${jobId ?? 'unknown'}`;

export interface TracedJob {
  /** The queue's name (BullMQ's, without the key prefix). */
  queue: string;
  /** The job's name: the span is `job <name>`. */
  name: string;
  id: string | undefined;
  /** 1 on the first run, 2 on the first retry… */
  attempt: number;
  /** `bullmq`, or `in-process` for the runners used without Redis. */
  system: 'bullmq' | 'in-process';
}

/** Runs `run` in the job's span (an error when it throws) and request id. */
function traceJob<T>(tracer: Tracer, job: TracedJob, run: () => Promise<T>): Promise<T> {
  const requestId = jobRequestId(job.queue, job.id);
  // ROOT_CONTEXT: a job run from a timer armed inside a request would otherwise join that request's trace.
  const span = tracer.startSpan(
    `job ${job.name}`,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        'messaging.system': job.system,
        'messaging.destination.name': job.queue,
        'messaging.message.id': job.id ?? '',
        'kocmoc.job': job.name,
        'kocmoc.job.attempt': job.attempt,
        'kocmoc.request_id': requestId,
      },
    },
    ROOT_CONTEXT,
  );
  return context.with(withRequestId(trace.setSpan(ROOT_CONTEXT, span), requestId), async () => {
    try {
      return await run();
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** A job of an in-process runner (used without Redis): in its span with a tracer, as it is without. */
export function runLocalJob<T>(tracer: Tracer | undefined, job: Omit<TracedJob, 'system'>, run: () => Promise<T>): Promise<T> {
  return tracer ? traceJob(tracer, { ...job, system: 'in-process' }, run) : run();
}

/** A BullMQ processor of `queue` whose every job runs in its span (traceJob); without a tracer, `process` itself. */
export function traceBullJobs<Data, Result>(tracer: Tracer | undefined, queue: string, process: Processor<Data, Result>): Processor<Data, Result> {
  if (!tracer) return process;
  return (job, token, signal) =>
    traceJob(tracer, { queue, name: job.name, id: job.id, attempt: job.attemptsMade + 1, system: 'bullmq' }, () => process(job, token, signal));
}
