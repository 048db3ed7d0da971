// The signed-in sessions a user can see and end (Signal's linked devices, Matrix's devices API).
// Ending one goes through revokeSessions: its tokens stop at once, its sockets close with 4401, its
// push subscriptions, device and keys are removed and the user's chat partners hear DEVICES_CHANGED.
import type { Viewer } from '../auth/authenticate.ts';
import { revokeSessions } from '../auth/sessions.ts';
import { notFound } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';

type SessionListServices = Pick<Services, 'prisma' | 'tokens' | 'events' | 'sessions'>;

/** Sessions that can still be used: not revoked, not expired. */
export const liveSessionsOf = (userId: string, now = new Date()) =>
  ({ userId, revokedAt: null, expiresAt: { gt: now } }) satisfies Prisma.SessionWhereInput;

/** Most recently seen first. */
export const SESSIONS_BY_LAST_SEEN = [{ lastSeenAt: 'desc' }, { id: 'desc' }] satisfies Prisma.SessionOrderByWithRelationInput[];

/**
 * Ends one of the viewer's sessions (the current one too: that is logging out). True if it was
 * live; false if it had ended already; NOT_FOUND for an id that is not one of the viewer's.
 */
export async function revokeSession(services: SessionListServices, viewer: Viewer, sessionId: string): Promise<boolean> {
  const session = await services.prisma.session.findFirst({ where: { id: sessionId, userId: viewer.userId }, select: { id: true, revokedAt: true, expiresAt: true } });
  if (!session) throw notFound('Session');
  if (session.revokedAt || session.expiresAt <= new Date()) return false;
  await revokeSessions(services, [session.id], 'revoked');
  return true;
}

/** Ends every live session of the viewer but the current one; returns how many. */
export async function revokeOtherSessions(services: SessionListServices, viewer: Viewer): Promise<number> {
  const others = await services.prisma.session.findMany({
    where: { ...liveSessionsOf(viewer.userId), id: { not: viewer.sessionId } },
    select: { id: true },
  });
  if (others.length === 0) return 0;
  await revokeSessions(services, others.map((session) => session.id), 'revoked');
  return others.length;
}
