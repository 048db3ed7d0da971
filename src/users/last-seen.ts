// When a user was last connected, as presence reports it on their going offline.
import type { PrismaClient } from '../generated/prisma/client.ts';

/** Users per lastSeenAt UPDATE: two array parameters, whatever the count, so one prepared statement. */
export const LAST_SEEN_BATCH_SIZE = 1_000;

/** Writes each user's lastSeenAt, unless their row already has a later one or they appear offline. */
export async function writeLastSeen(prisma: PrismaClient, batch: ReadonlyArray<readonly [string, Date]>) {
  // Sorted, so concurrent batches (from other instances) lock shared rows in the same order.
  const sorted = [...batch].sort(([a], [b]) => (a < b ? -1 : 1)); // ids are unique in a batch
  const userIds = sorted.map(([userId]) => userId);
  const times = sorted.map(([, lastSeenAt]) => lastSeenAt);
  // The column is timestamp(3) holding UTC, as Prisma writes it; the adapter sends Dates as UTC
  // without a zone, so casting to timestamp(3) involves no session time zone. The condition
  // never moves lastSeenAt backwards if two reports' writes land out of order, never moves it for
  // a user who chose OFFLINE (appearing offline keeps the time they chose it), and records nothing
  // of a deleted account's sockets closing.
  await prisma.$executeRaw`
    UPDATE "User" u SET "lastSeenAt" = v."at"
    FROM unnest(${userIds}::text[], ${times}::timestamp(3)[]) AS v("id", "at")
    WHERE u."id" = v."id" AND (u."lastSeenAt" IS NULL OR u."lastSeenAt" < v."at") AND u."status" <> 'OFFLINE' AND u."deletedAt" IS NULL`;
}
