// Hands messages from the outbox table to the job queue. Rows are written in the same statement as
// their message, and deleted in the same transaction that enqueued them, so a message is neither
// lost (crash or Redis down between commit and enqueue) nor missed; enqueueing twice is harmless
// (job ids). Any number of instances may relay at once (SKIP LOCKED splits the rows).
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { jobIds, type NotificationQueue } from './queue.ts';

export interface OutboxRelayOptions {
  prisma: PrismaClient;
  queue: NotificationQueue;
  logger: Logger;
  /** How often leftovers are retried (e.g. while Redis was down). Default 5 s. */
  intervalMs?: number;
  /** Rows per transaction. Default 200. */
  batchSize?: number;
}

export function createOutboxRelay({ prisma, queue, logger, intervalMs = 5_000, batchSize = 200 }: OutboxRelayOptions) {
  let timer: NodeJS.Timeout | undefined;
  let draining: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  // Requests can hold every pooled connection for a while under load: wait for one rather than fail.
  const drainBatch = () =>
    prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<Array<{ messageId: string }>>`
        SELECT "messageId" FROM "NotificationOutbox" ORDER BY "createdAt" LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`;
      if (rows.length === 0) return 0;
      const ids = rows.map((row) => row.messageId);
      await queue.add('fan-out', ids.map((messageId) => ({ id: jobIds.fanOut(messageId), data: { messageId } })));
      await tx.notificationOutbox.deleteMany({ where: { messageId: { in: ids } } });
      return rows.length;
    }, { maxWait: 15_000, timeout: 30_000 });

  const drain = async () => {
    while ((await drainBatch()) === batchSize) {
      // more waiting
    }
  };

  /** Relays soon; calls while a drain runs make it run once more, so nothing waits for the interval. */
  const kick = () => {
    // A request that outlived shutdown still kicks; draining then would reopen the database pool stop() closed.
    if (stopped) return;
    if (draining) {
      again = true;
      return;
    }
    draining = drain()
      .catch((error) => logger.warn({ err: error }, 'notification outbox relay failed; will retry'))
      .finally(() => {
        draining = undefined;
        if (again) {
          again = false;
          kick();
        }
      });
  };

  return {
    kick,
    start() {
      timer = setInterval(kick, intervalMs);
      timer.unref();
      kick();
    },
    /** Resolves when no drain is running. */
    async drained() {
      while (draining) await draining;
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      again = false;
      await draining;
    },
  };
}
