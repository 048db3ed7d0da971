// Live device sessions, cached briefly in this process: every authenticated request needs one, and
// they change rarely. Ending a session clears it here at once and, through the event bus, on every
// other instance, so logout still takes effect immediately.
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { EventBus } from '../realtime/bus.ts';
import { channels, type SessionsTopicEvent } from '../realtime/events.ts';

export interface SessionCacheOptions {
  prisma: PrismaClient;
  bus: EventBus;
  /** How long a looked-up session is trusted without asking the database again. Default 10 s. */
  ttlMs?: number;
  /** Sessions kept at most (oldest dropped first). Default 100,000. */
  maxEntries?: number;
}

export type SessionCache = ReturnType<typeof createSessionCache>;

export function createSessionCache({ prisma, bus, ttlMs = 10_000, maxEntries = 100_000 }: SessionCacheOptions) {
  const entries = new Map<string, { userId: string | null; until: number }>();
  let stopListening: (() => void) | undefined;

  const forget = (sessionIds: readonly string[]) => {
    for (const id of sessionIds) entries.delete(id);
  };

  return {
    async start() {
      stopListening = await bus.listen(channels.sessions, (payload) => forget((payload as SessionsTopicEvent).sessionIds));
    },
    stop() {
      stopListening?.();
      entries.clear();
    },
    forget,
    /** The user of a live session, or null (unknown, revoked or expired). */
    async liveSessionUser(sessionId: string): Promise<string | null> {
      const cached = entries.get(sessionId);
      if (cached && cached.until > Date.now()) return cached.userId;
      const session = await findLiveSession(prisma, sessionId);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      // A session can expire within the TTL: trust it no longer than it lives.
      const expiresAt = session?.expiresAt.getTime() ?? Infinity;
      entries.set(sessionId, { userId: session?.userId ?? null, until: Math.min(Date.now() + ttlMs, expiresAt) });
      return session?.userId ?? null;
    },
  };
}

/** How finely Session.lastSeenAt follows use: a session in use writes its row at most once per this. */
export const LAST_SEEN_RESOLUTION_MS = 60_000;

/**
 * The session if it exists, is not revoked and has not expired; in the same statement, marks it
 * seen now when its lastSeenAt is older than LAST_SEEN_RESOLUTION_MS (sessions listed to their user
 * show it). A cache miss is at most one per session, instance and TTL, so this writes rarely.
 */
async function findLiveSession(prisma: PrismaClient, sessionId: string) {
  const [session] = await prisma.$queryRaw<Array<{ id: string; userId: string; expiresAt: Date }>>`
    WITH live AS (
      SELECT "id", "userId", "expiresAt", "lastSeenAt" FROM "Session"
      WHERE "id" = ${sessionId} AND "revokedAt" IS NULL AND "expiresAt" > now()
    ), seen AS (
      UPDATE "Session" s SET "lastSeenAt" = now() FROM live
      WHERE s."id" = live."id" AND live."lastSeenAt" < now() - make_interval(secs => ${LAST_SEEN_RESOLUTION_MS / 1000})
    )
    SELECT "id", "userId", "expiresAt" FROM live`;
  return session ?? null;
}
