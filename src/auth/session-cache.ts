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

/** The session if it exists, is not revoked and has not expired. */
function findLiveSession(prisma: PrismaClient, sessionId: string) {
  return prisma.session.findFirst({
    where: { id: sessionId, revokedAt: null, expiresAt: { gt: new Date() } },
    select: { id: true, userId: true, expiresAt: true },
  });
}
