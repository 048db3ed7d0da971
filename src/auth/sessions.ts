// Device sessions: each holds one rotation family of refresh tokens (RFC 6749 §10.4 reuse detection).
import type { Services, Viewer } from '../context.ts';
import { unauthenticated } from '../errors.ts';
import { uuidv7 } from '../ids.ts';
import type { PrismaClient, User } from '../generated/prisma/client.ts';
import { hashRefreshToken, newRefreshToken } from './tokens.ts';

export interface AuthPayload {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
  user: User;
  /** Not exposed: lets the request that signed in act as that session. */
  sessionId: string;
}

type SessionServices = Pick<Services, 'prisma' | 'tokens' | 'events' | 'sessions'>;

/** The session if it exists, is not revoked and has not expired. */
export function findLiveSession(prisma: PrismaClient, sessionId: string) {
  return prisma.session.findFirst({
    where: { id: sessionId, revokedAt: null, expiresAt: { gt: new Date() } },
    select: { id: true, userId: true, expiresAt: true },
  });
}

/** Starts a new device session for a user who just proved who they are. */
export async function openSession(
  { prisma, tokens }: SessionServices,
  user: User,
  device: { userAgent: string | null },
): Promise<AuthPayload> {
  const refreshToken = newRefreshToken();
  const now = new Date();
  const session = { id: uuidv7(), expiresAt: new Date(now.getTime() + tokens.refreshTokenTtlMs) };
  // The session and its first refresh token in one statement (no transaction round trips): logins
  // are a hot path during reconnect storms.
  await prisma.$executeRaw`
    WITH session AS (
      INSERT INTO "Session" ("id", "userId", "userAgent", "createdAt", "lastRefreshAt", "expiresAt")
      VALUES (${session.id}, ${user.id}, ${device.userAgent}, ${now}, ${now}, ${session.expiresAt})
      RETURNING "id"
    )
    INSERT INTO "RefreshToken" ("id", "sessionId", "tokenHash", "createdAt")
    SELECT ${uuidv7()}, "id", ${hashRefreshToken(refreshToken)}, ${now} FROM session`;
  const access = await tokens.issueAccessToken({ userId: user.id, sessionId: session.id }, now);
  return { accessToken: access.token, accessTokenExpiresAt: access.expiresAt, refreshToken, user, sessionId: session.id };
}

/**
 * Trades a refresh token for a new pair. The old token is spent; presenting a spent token again
 * means it leaked (or raced), so the whole session ends and both holders must sign in again.
 */
export async function refreshSession(services: SessionServices, refreshToken: string): Promise<AuthPayload> {
  const { prisma, tokens } = services;
  const now = new Date();
  const row = await prisma.refreshToken.findUnique({
    where: { tokenHash: hashRefreshToken(refreshToken) },
    include: { session: { include: { user: true } } },
  });
  if (!row) throw unauthenticated('Refresh token is invalid.');
  const { session } = row;
  if (session.revokedAt || session.expiresAt <= now) throw unauthenticated('Session has ended. Sign in again.');

  const next = newRefreshToken();
  // The conditional update, not the read above, decides who spends the token: two concurrent
  // refreshes with one token cannot both win.
  const rotated = await prisma.$transaction(async (tx) => {
    const spent = await tx.refreshToken.updateMany({ where: { id: row.id, rotatedAt: null }, data: { rotatedAt: now } });
    if (spent.count === 0) return false;
    await tx.refreshToken.create({ data: { sessionId: session.id, tokenHash: hashRefreshToken(next) } });
    await tx.session.update({
      where: { id: session.id },
      data: { lastRefreshAt: now, expiresAt: new Date(now.getTime() + tokens.refreshTokenTtlMs) },
    });
    return true;
  });
  if (!rotated) {
    await revokeSessions(services, [session.id], 'refresh_token_reuse');
    throw unauthenticated('Refresh token was already used, so this session was ended for safety. Sign in again.');
  }
  const access = await tokens.issueAccessToken({ userId: session.userId, sessionId: session.id }, now);
  return { accessToken: access.token, accessTokenExpiresAt: access.expiresAt, refreshToken: next, user: session.user, sessionId: session.id };
}

/**
 * Ends the session that `refreshToken` belongs to, and the caller's current session.
 * Either one is enough; with neither there is nothing to end.
 */
export async function endSession(
  services: SessionServices,
  viewer: Viewer | null,
  refreshToken: string | null | undefined,
): Promise<void> {
  const { prisma } = services;
  const sessionIds = new Set<string>();
  if (viewer) sessionIds.add(viewer.sessionId);
  if (refreshToken) {
    const row = await prisma.refreshToken.findUnique({
      where: { tokenHash: hashRefreshToken(refreshToken) },
      select: { session: { select: { id: true, userId: true } } },
    });
    // A signed-in caller cannot end someone else's session with a token it found.
    if (row && (!viewer || row.session.userId === viewer.userId)) sessionIds.add(row.session.id);
    else if (!viewer) throw unauthenticated('Refresh token is invalid.');
  }
  if (sessionIds.size === 0) throw unauthenticated();
  await revokeSessions(services, [...sessionIds], 'logout');
}

/** Ends sessions: their refresh tokens and access tokens stop working, their sockets close. */
export async function revokeSessions({ prisma, events, sessions }: SessionServices, sessionIds: string[], reason: string) {
  await prisma.session.updateMany({
    where: { id: { in: sessionIds }, revokedAt: null },
    data: { revokedAt: new Date(), revokedReason: reason },
  });
  // Here at once; other instances when the event reaches them.
  sessions.forget(sessionIds);
  await events.sessionsEnded(sessionIds);
}
