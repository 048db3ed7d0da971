// Uploads that no message uses — never sent, or sent in messages since deleted (deleting a message
// clears its attachmentId) — that are nobody's profile picture and that no scheduled message still
// waits to send (PENDING or SENDING; once it is sent, cancelled or failed the usual rules apply) are
// deleted after UPLOAD_RETENTION: the row first, then the bytes, so
// nothing ever points at a removed file. A crash in between leaves only unreferenced bytes behind.
import { forEachIdBatch } from '../db/keyset.ts';
import type { ScheduledMessageState } from '../generated/prisma/client.ts';
import { startPeriodicJob } from '../periodic-job.ts';
import type { Services } from '../services.ts';

type CleanupServices = Pick<Services, 'prisma' | 'storage' | 'logger'>;

/** Where a file's bytes are kept (an attachment's, or an export's without a thumbnail). */
type StoredFile = { storageKey: string; thumbnailKey?: string | null };

/** States of a scheduled message that still needs its upload. */
const SCHEDULE_HOLDS: ScheduledMessageState[] = ['PENDING', 'SENDING'];
/** Rows per transaction: short row locks, bounded memory. */
const BATCH = 200;
/** How often buildApp's timer runs the clean-up. */
export const CLEANUP_INTERVAL_MS = 60 * 60_000;

/** Deletes unused attachments created before `olderThan` (rows and stored bytes); returns how many. */
export async function deleteUnusedUploads(services: CleanupServices, olderThan: Date): Promise<number> {
  const { prisma, storage } = services;
  const deleted = await forEachIdBatch(
    (after, take) =>
      prisma.attachment.findMany({
        where: {
          createdAt: { lt: olderThan },
          messages: { none: {} },
          avatarOf: { is: null },
          scheduledMessages: { none: { state: { in: SCHEDULE_HOLDS } } },
          id: { gt: after },
        },
        select: { id: true },
        orderBy: { id: 'asc' },
        take,
      }),
    BATCH,
    async (ids) => {
      const removed = await prisma.$transaction(async (tx) => {
        // FOR UPDATE conflicts with the key-share lock a message or scheduled message insert (or a
        // profile picture's update) takes on the attachment it references: one in flight is skipped here, and a later
        // one waits for this transaction and then fails its foreign key instead of losing its
        // attachment to SET NULL.
        const locked = await tx.$queryRaw<Array<{ id: string }>>`
          SELECT "id" FROM "Attachment" WHERE "id" = ANY(${ids}) FOR UPDATE SKIP LOCKED`;
        if (locked.length === 0) return [];
        // A new statement, so a new snapshot: it sees every message committed before the locks were taken.
        return tx.$queryRaw<StoredFile[]>`
          DELETE FROM "Attachment" a
          WHERE a."id" = ANY(${locked.map((row) => row.id)})
            AND NOT EXISTS (SELECT 1 FROM "Message" m WHERE m."attachmentId" = a."id")
            AND NOT EXISTS (SELECT 1 FROM "User" u WHERE u."avatarAttachmentId" = a."id")
            AND NOT EXISTS (SELECT 1 FROM "ScheduledMessage" s WHERE s."attachmentId" = a."id" AND s."state"::text = ANY(${SCHEDULE_HOLDS}))
          RETURNING a."storageKey", a."thumbnailKey"`;
      });
      await deleteStoredBytes(services, removed);
      return removed.length;
    },
  );
  // Temporary files of writes a crash interrupted are as old as the retention allows, too.
  await storage.deleteIncomplete?.(olderThan);
  return deleted;
}

/**
 * Deletes every upload of a user (a deleted account's), rows and stored bytes, in use or not: their
 * messages were erased first, so nothing shows them any more. Returns how many.
 */
export async function deleteUploadsOf(services: CleanupServices, uploaderId: string): Promise<number> {
  const { prisma } = services;
  return forEachIdBatch(
    (after, take) => prisma.attachment.findMany({ where: { uploaderId, id: { gt: after } }, select: { id: true }, orderBy: { id: 'asc' }, take }),
    BATCH,
    async (ids) => {
      const removed = await prisma.$queryRaw<StoredFile[]>`
        DELETE FROM "Attachment" WHERE "id" = ANY(${ids}) RETURNING "storageKey", "thumbnailKey"`;
      await deleteStoredBytes(services, removed);
      return removed.length;
    },
  );
}

/** After their rows are gone: bytes that cannot be deleted now are unreferenced, not dangerous. */
export async function deleteStoredBytes({ storage, logger }: Pick<Services, 'storage' | 'logger'>, files: readonly StoredFile[]) {
  for (const key of files.flatMap((file) => (file.thumbnailKey ? [file.storageKey, file.thumbnailKey] : [file.storageKey]))) {
    await storage.delete(key).catch((error: unknown) => logger.warn({ err: error, storageKey: key }, 'could not delete stored bytes'));
  }
}

export interface UploadCleanupOptions {
  /** Unused uploads older than this are deleted (UPLOAD_RETENTION). */
  retentionMs: number;
  /** Default CLEANUP_INTERVAL_MS (an hour). */
  intervalMs?: number;
}

/**
 * Runs deleteUnusedUploads every interval; the returned function stops the timer and waits for a
 * run in progress (so shutdown does not pull the database from under it). The timer never keeps
 * the process alive.
 */
export function startUploadCleanup(
  services: CleanupServices,
  { retentionMs, intervalMs = CLEANUP_INTERVAL_MS }: UploadCleanupOptions,
): () => Promise<void> {
  return startPeriodicJob(services.logger, {
    intervalMs,
    run: () => deleteUnusedUploads(services, new Date(Date.now() - retentionMs)),
    doneMessage: 'deleted unused uploads',
    failedMessage: 'unused upload clean-up failed',
  });
}
