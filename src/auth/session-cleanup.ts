// Device sessions that ended (revoked, or expired without a refresh) are deleted once they have been
// over for DEAD_SESSION_RETENTION_MS. Their push subscriptions and LEGACY refresh-token rows go with
// them: both foreign keys to "Session" are ON DELETE CASCADE, so a single DELETE statement removes
// them all.
//
// A live session is one row however often it refreshes: a refresh token names its session and
// generation (sessions.ts), so a spent one is still recognised — and ends the session — with nothing
// stored for it. Only the LEGACY "RefreshToken" rows (tokens issued before generations) are stored
// per token, and nothing inserts them any more, so that table only shrinks, by this DELETE. Their
// spent rows are not purged while the session lives: a deleted one would read as "invalid" rather
// than as reuse, and whoever still holds a spent token may present it any time while the session
// lives (a stolen token's victim that comes back after weeks offline is the case detection exists
// for). When the legacy path and table can go: see the top of sessions.ts.
import { forEachIdBatch } from '../db/keyset.ts';
import { startPeriodicJob } from '../periodic-job.ts';
import type { Services } from '../services.ts';
import type { Prisma } from '../generated/prisma/client.ts';

type SessionCleanupServices = Pick<Services, 'prisma' | 'logger'>;

/**
 * How long an ended session is kept before it is deleted. Meanwhile its revokedReason stays visible
 * (e.g. refresh_token_reuse, for support) and a client presenting its token hears "Session has
 * ended" rather than "invalid". Default 7 days.
 */
export const DEAD_SESSION_RETENTION_MS = 7 * 24 * 60 * 60_000;
/** How often buildApp's timer runs the clean-up. */
export const SESSION_CLEANUP_INTERVAL_MS = 60 * 60_000;
/** Sessions per DELETE (each its own short transaction): short row locks, bounded memory. */
const BATCH = 500;

/** Sessions revoked, or expired, before `cutoff`: neither state is ever undone. */
const sessionsEndedBefore = (cutoff: Date): Prisma.SessionWhereInput => ({
  OR: [{ revokedAt: { lt: cutoff } }, { expiresAt: { lt: cutoff } }],
});

/**
 * Deletes sessions revoked or expired before `endedBefore`, with their push subscriptions and legacy
 * refresh-token rows (by cascade); returns how many sessions. Live sessions and their rows — spent
 * legacy tokens included, see the top of this file — are left alone.
 */
export async function deleteDeadSessions(services: Pick<Services, 'prisma'>, endedBefore: Date): Promise<number> {
  const { prisma } = services;
  const ended = sessionsEndedBefore(endedBefore);
  return forEachIdBatch(
    (after, take) => prisma.session.findMany({ where: { ...ended, id: { gt: after } }, select: { id: true }, orderBy: { id: 'asc' }, take }),
    BATCH,
    // Walking the primary key makes a run one pass over the table, however many batches.
    async (ids) => (await prisma.session.deleteMany({ where: { id: { in: ids }, ...ended } })).count,
  );
}

export interface SessionCleanupOptions {
  /** Ended sessions older than this are deleted. Default DEAD_SESSION_RETENTION_MS (7 days). */
  retentionMs?: number;
  /** Default SESSION_CLEANUP_INTERVAL_MS (an hour). */
  intervalMs?: number;
}

/**
 * Runs deleteDeadSessions every interval; the returned function stops the timer and waits for a run
 * in progress (so shutdown does not pull the database from under it). Failures are logged, not
 * thrown, and the timer never keeps the process alive.
 */
export function startSessionCleanup(
  services: SessionCleanupServices,
  { retentionMs = DEAD_SESSION_RETENTION_MS, intervalMs = SESSION_CLEANUP_INTERVAL_MS }: SessionCleanupOptions = {},
): () => Promise<void> {
  return startPeriodicJob(services.logger, {
    intervalMs,
    run: () => deleteDeadSessions(services, new Date(Date.now() - retentionMs)),
    doneMessage: 'deleted ended device sessions',
    failedMessage: 'ended session clean-up failed',
  });
}
