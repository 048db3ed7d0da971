// What the notification queue recorded about the push bench's jobs, read straight from BullMQ's job
// hashes (`<prefix>:<queue>:<job id>`): each delivery's outcome (sent, collapsed, ...) and when it
// was queued, taken and finished. And the clean-up of the bench's Redis keys.
import type { Redis } from 'ioredis';
import { QUEUE_NAME } from '../src/notifications/queue.ts';
import { tallyCodes, type CodeCounts } from './outcomes.ts';

export interface JobRecord {
  /** The job's return value (`sent`, `collapsed`, `skipped`, `gone`, a fan-out's count), `failed`, or `missing`. */
  outcome: string;
  /** Epoch ms: added, taken by a worker, finished (NaN when not yet). */
  addedAt: number;
  processedAt: number;
  finishedAt: number;
  attempts: number;
}

/** One pipelined read for all `jobIds`. */
export async function readJobs(redis: Redis, prefix: string, jobIds: string[]): Promise<JobRecord[]> {
  const pipeline = redis.pipeline();
  for (const id of jobIds) pipeline.hmget(`${prefix}:${QUEUE_NAME}:${id}`, 'returnvalue', 'failedReason', 'timestamp', 'processedOn', 'finishedOn', 'atm');
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, fields]) => {
    if (error) throw error;
    const [returnValue, failedReason, timestamp, processedOn, finishedOn, attempts] = fields as Array<string | null>;
    const outcome = returnValue != null ? String(JSON.parse(returnValue)) : failedReason != null ? 'failed' : timestamp != null ? 'pending' : 'missing';
    return { outcome, addedAt: Number(timestamp ?? NaN), processedAt: Number(processedOn ?? NaN), finishedAt: Number(finishedOn ?? NaN), attempts: Number(attempts ?? 0) };
  });
}

export const countOutcomes = (records: JobRecord[]): CodeCounts => tallyCodes(records.map((record) => record.outcome));

/** Deletes every key under `prefix:` (the bench's queues); returns how many. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
