// What is left to do after deleteAccount (AccountDeletion rows), on every instance every hour:
// - an hour after a deletion, one last erasure pass: it finishes what a crash interrupted and erases
//   what requests already in flight at the deletion wrote (a message, an upload);
// - once USERNAME_RESERVATION_MS (30 days) have passed, the username is released: the row takes a
//   handle nobody can register (deletedUsername) and the AccountDeletion row goes;
// and, for every account, data exports whose time is up are deleted (rows and bytes).
import { forEachIdBatch } from '../db/keyset.ts';
import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';
import { startPeriodicJob } from '../periodic-job.ts';
import type { Services } from '../services.ts';
import { eraseAccountData } from './account-deletion.ts';
import { deleteExports } from './data-export.ts';
import { deletedUsername } from './deleted-accounts.ts';

type AccountCleanupServices = Parameters<typeof eraseAccountData>[0];

/** How long after a deletion its last erasure pass runs: requests in flight then have long ended. */
export const FINAL_ERASURE_DELAY_MS = 60 * 60_000;
/** How often buildApp's timer runs the clean-up. */
export const ACCOUNT_CLEANUP_INTERVAL_MS = 60 * 60_000;
/** Deleted accounts per batch. */
const BATCH = 100;

/** Pages of the AccountDeletion rows matching `where`, in user id order, as forEachIdBatch walks them. */
const deletionPages = (prisma: PrismaClient, where: Prisma.AccountDeletionWhereInput) => async (after: string, take: number) => {
  const rows = await prisma.accountDeletion.findMany({ where: { ...where, userId: { gt: after } }, select: { userId: true }, orderBy: { userId: 'asc' }, take });
  return rows.map((row) => ({ id: row.userId }));
};

/**
 * Runs the last erasure pass of the deletions made before `deletedBefore` that have not had it;
 * returns how many accounts it finished. An account whose pass fails is logged and tried again next
 * time; the others go on.
 */
export async function finishErasures(services: AccountCleanupServices, deletedBefore: Date): Promise<number> {
  const { prisma, logger } = services;
  return forEachIdBatch(
    deletionPages(prisma, { erasedAt: null, deletedAt: { lt: deletedBefore } }),
    BATCH,
    async (userIds) => {
      let finished = 0;
      for (const userId of userIds) {
        try {
          await eraseAccountData(services, userId);
          await prisma.accountDeletion.update({ where: { userId }, data: { erasedAt: new Date() } });
          finished++;
        } catch (error) {
          logger.warn({ err: error, userId }, 'could not finish erasing a deleted account');
        }
      }
      return finished;
    },
  );
}

/** Releases the usernames whose reservation ended by `now` (after their last erasure pass); returns how many. */
export async function releaseUsernames({ prisma }: Pick<Services, 'prisma'>, now = new Date()): Promise<number> {
  return forEachIdBatch(
    deletionPages(prisma, { usernameReleaseAt: { lte: now }, erasedAt: { not: null } }),
    BATCH,
    async (userIds) => {
      const handles = userIds.map(deletedUsername);
      // One statement: the reservation ends and the name is released together, or neither; its
      // skeleton goes too, so look-alikes of the old name are free again as well.
      return prisma.$executeRaw`
        WITH released AS (
          DELETE FROM "AccountDeletion" WHERE "userId" = ANY(${userIds}) AND "usernameReleaseAt" <= ${now} AND "erasedAt" IS NOT NULL
          RETURNING "userId"
        )
        UPDATE "User" u SET "username" = v."handle", "usernameSkeleton" = NULL
        FROM unnest(${userIds}::text[], ${handles}::text[]) AS v("id", "handle") JOIN released r ON r."userId" = v."id"
        WHERE u."id" = v."id"`;
    },
  );
}

export interface AccountCleanupOptions {
  /** Default ACCOUNT_CLEANUP_INTERVAL_MS (an hour). */
  intervalMs?: number;
  /** Default FINAL_ERASURE_DELAY_MS (an hour). */
  finalErasureDelayMs?: number;
}

/**
 * Runs finishErasures, releaseUsernames and the deletion of expired exports every interval; the returned function stops the timer
 * and waits for a run in progress. Failures are logged, not thrown.
 */
export function startAccountCleanup(
  services: AccountCleanupServices,
  { intervalMs = ACCOUNT_CLEANUP_INTERVAL_MS, finalErasureDelayMs = FINAL_ERASURE_DELAY_MS }: AccountCleanupOptions = {},
): () => Promise<void> {
  return startPeriodicJob(services.logger, {
    intervalMs,
    run: async () =>
      (await finishErasures(services, new Date(Date.now() - finalErasureDelayMs))) +
      (await releaseUsernames(services)) +
      (await deleteExports(services, { expiresAt: { lte: new Date() } })),
    doneMessage: 'finished erasing deleted accounts, released reserved usernames, deleted expired data exports',
    failedMessage: 'deleted account clean-up failed',
  });
}
