// Hands messages from the outbox table on. Rows are written in the same statement as their
// message, so a message is neither lost (crash or Redis down between commit and enqueue) nor
// missed. Any number of instances may relay at once (SKIP LOCKED splits the rows).
//
// With Redis, a batch's fan-out jobs are enqueued inside the transaction that deletes the rows
// (enqueueing twice is harmless: job ids), and the worker process runs them. Without Redis the
// jobs would live in this process anyway, so a batch is one statement: the rows are deleted and
// every recipient device of their messages returned together (jobs.ts recipientsOf), and only the
// deliveries to users who are not connected become jobs. A failed statement deletes nothing, so
// the next kick or interval takes the rows again.
//
// An edit that newly mentions members writes a row of its own (its id is the edit's, with the users
// in `mentionedUserIds`): the same statements relay it, as a 'mention-fan-out' job with Redis, and
// without Redis with the recipients found for those users alone.
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { recipientsOf, type Recipient } from './jobs.ts';
import { jobIds, type NotificationQueue } from './queue.ts';

export interface OutboxRelayOptions {
  prisma: PrismaClient;
  queue: NotificationQueue;
  logger: Logger;
  /**
   * Without Redis: the recipient devices of one batch's messages, for their deliveries (jobs.ts
   * enqueueForOffline). Not used when the queue is distributed: the worker fans out.
   */
  deliverInProcess?: (recipients: Recipient[]) => Promise<unknown>;
  /** How often leftovers are retried (e.g. while Redis was down). Default 5 s. */
  intervalMs?: number;
  /** Rows per batch. Default 200. */
  batchSize?: number;
}

// = ANY(ARRAY(…)), not IN (…): the planner made IN a hash semi-join over a sequential scan of the
// whole table (every live and dead row of a queue that grows under load); as an array the batch
// is deleted through the primary key.
const takeRows = (batchSize: number) => Prisma.sql`
  DELETE FROM "NotificationOutbox" WHERE "id" = ANY(ARRAY(
    SELECT "id" FROM "NotificationOutbox" ORDER BY "createdAt" LIMIT ${batchSize} FOR UPDATE SKIP LOCKED))
  RETURNING "id", "messageId", "mentionedUserIds"`;

/**
 * Without Redis, one relay batch as one statement: up to `batchSize` outbox rows taken (deleted),
 * each with its recipient devices (a row without any comes back once, with nulls).
 */
export const takeBatchWithRecipients = (batchSize: number) => Prisma.sql`
  WITH taken AS (${takeRows(batchSize)})
  SELECT t."id" AS taken, t."messageId", t."mentionedUserIds" IS NOT NULL AS edit, r."userId", r."subscriptionId"
  FROM taken t LEFT JOIN LATERAL (${recipientsOf(Prisma.raw('t."messageId"'), Prisma.raw('t."mentionedUserIds"'))}) r ON true`;

export function createOutboxRelay({ prisma, queue, logger, deliverInProcess, intervalMs = 5_000, batchSize = 200 }: OutboxRelayOptions) {
  let timer: NodeJS.Timeout | undefined;
  let scheduled: NodeJS.Immediate | undefined;
  let draining: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  // Requests can hold every pooled connection for a while under load: wait for one rather than fail.
  const enqueueBatch = () =>
    prisma.$transaction(async (tx) => {
      const rows = await tx.$queryRaw<Array<{ id: string; messageId: string; mentionedUserIds: string[] | null }>>`
        SELECT "id", "messageId", "mentionedUserIds" FROM "NotificationOutbox" ORDER BY "createdAt" LIMIT ${batchSize} FOR UPDATE SKIP LOCKED`;
      if (rows.length === 0) return 0;
      const sends = rows.filter((row) => row.mentionedUserIds === null);
      const edits = rows.flatMap(({ id, messageId, mentionedUserIds }) => (mentionedUserIds ? [{ editId: id, messageId, userIds: mentionedUserIds }] : []));
      await queue.add('fan-out', sends.map(({ messageId }) => ({ id: jobIds.fanOut(messageId), data: { messageId } })));
      await queue.add('mention-fan-out', edits.map((data) => ({ id: jobIds.mentionFanOut(data.editId), data })));
      await tx.notificationOutbox.deleteMany({ where: { id: { in: rows.map((row) => row.id) } } });
      return rows.length;
    }, { maxWait: 15_000, timeout: 30_000 });

  /** One statement: a row without recipients comes back once, with nulls. */
  const fanOutBatch = async (deliver: (recipients: Recipient[]) => Promise<unknown>) => {
    const rows = await prisma.$queryRaw<Array<{ taken: string; messageId: string; edit: boolean; userId: string | null; subscriptionId: string | null }>>(
      takeBatchWithRecipients(batchSize),
    );
    const recipients = rows.flatMap(({ taken, messageId, edit, userId, subscriptionId }) =>
      userId && subscriptionId ? [{ messageId, userId, subscriptionId, ...(edit ? { editId: taken } : {}) }] : [],
    );
    await deliver(recipients);
    return new Set(rows.map((row) => row.taken)).size;
  };

  const drainBatch = !queue.distributed && deliverInProcess ? () => fanOutBatch(deliverInProcess) : enqueueBatch;

  const drain = async () => {
    while ((await drainBatch()) === batchSize) {
      // more waiting
    }
  };

  const run = () => {
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

  /**
   * Relays soon: after the current turn of the event loop, so the request that kicked answers
   * first and every send of that turn shares one batch. Calls while a drain runs make it run once
   * more, so nothing waits for the interval.
   */
  const kick = () => {
    // A request that outlived shutdown still kicks; draining then would reopen the database pool stop() closed.
    if (stopped || scheduled) return;
    if (draining) {
      again = true;
      return;
    }
    scheduled = setImmediate(() => {
      scheduled = undefined;
      if (!stopped) run();
    });
  };

  return {
    kick,
    start() {
      timer = setInterval(kick, intervalMs);
      timer.unref();
      kick();
    },
    /** Resolves when no drain is running or about to start. */
    async drained() {
      while (draining || scheduled) await (draining ?? new Promise((resolve) => setImmediate(resolve)));
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      clearImmediate(scheduled);
      scheduled = undefined;
      again = false;
      await draining;
    },
  };
}
