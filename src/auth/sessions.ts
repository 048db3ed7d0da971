// Device sessions: each holds one rotation family of refresh tokens (RFC 6749 §10.4 reuse detection)
// in constant space. A refresh token names its session and a generation and carries a MAC
// (tokens.ts); the session row holds the current generation, and a refresh moves it on by one. A
// token of ours with an older generation was spent, so it coming back ends the session.
//
// LEGACY: tokens issued before generations (migration 20261121170335_session_token_generation) are
// opaque strings whose SHA-256 is in "RefreshToken". A session's live one is accepted once and the
// session goes on with generation tokens; a spent one still ends its session. Nothing inserts rows
// there any more; they go with their sessions (session-cleanup.ts). REFRESH_TOKEN_TTL after the
// last instance of the old code stopped, every unspent legacy token has expired with its session,
// and the path only recognises spent ones. Remove it then (refreshLegacySession, the legacy branches
// of sessionOfRefreshToken and readRefreshToken, hashRefreshToken, the RefreshToken model and
// table) if a spent pre-upgrade token may from then on read as "invalid" rather than end its
// session; or, keeping that guarantee to the end, once the table is empty.
import { removeDevicesOfSessions } from '../devices/devices.ts';
import { unauthenticated } from '../errors.ts';
import { uuidv7 } from '../ids.ts';
import type { Prisma, User } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import type { Viewer } from './authenticate.ts';
import type { TokenService } from './tokens.ts';

export interface AuthPayload {
  accessToken: string;
  refreshToken: string;
  accessTokenExpiresAt: Date;
  user: User;
  /** Not exposed: lets the request that signed in act as that session. */
  sessionId: string;
}

type SessionServices = Pick<Services, 'prisma' | 'tokens' | 'events' | 'sessions'>;

/** The generation of a new session's first refresh token. */
const FIRST_GENERATION = 1;

/** Starts a new device session for a user who just proved who they are. */
export async function openSession(
  { prisma, tokens }: SessionServices,
  user: User,
  device: { userAgent: string | null },
): Promise<AuthPayload> {
  const now = new Date();
  const session = { id: uuidv7(), expiresAt: new Date(now.getTime() + tokens.refreshTokenTtlMs) };
  // A single INSERT (no transaction round trips): logins are a hot path during reconnect storms,
  // and the refresh token needs no row of its own.
  await prisma.$executeRaw`
    INSERT INTO "Session" ("id", "userId", "userAgent", "createdAt", "lastRefreshAt", "expiresAt", "generation")
    VALUES (${session.id}, ${user.id}, ${device.userAgent}, ${now}, ${now}, ${session.expiresAt}, ${FIRST_GENERATION})`;
  return authPayload(tokens, user, session.id, FIRST_GENERATION, now);
}

/**
 * Trades a refresh token for a new pair. The old token is spent; presenting a spent token again
 * means it leaked (or raced), so the whole session ends and both holders must sign in again. A token
 * that is not ours (a wrong MAC, say with a real session id) is only refused: it ends nothing.
 */
export async function refreshSession(services: SessionServices, refreshToken: string): Promise<AuthPayload> {
  const { prisma, tokens } = services;
  const presented = tokens.readRefreshToken(refreshToken);
  if (!presented) throw invalidRefreshToken();
  if (presented.kind === 'legacy') return refreshLegacySession(services, presented.tokenHash);

  const now = new Date();
  // The conditional update alone decides: of two refreshes with one token, one moves the
  // generation on and the other then finds its generation spent.
  const user = await advanceGeneration(prisma, tokens, presented, now);
  if (user) return authPayload(tokens, user, presented.sessionId, presented.generation + 1, now);

  const session = await prisma.session.findUnique({
    where: { id: presented.sessionId },
    select: { id: true, generation: true, revokedAt: true, expiresAt: true },
  });
  if (!session) throw invalidRefreshToken();
  if (hasEnded(session, now)) throw sessionEnded();
  if (session.generation > presented.generation) return endForReuse(services, session.id);
  // A generation the session never reached: possible only after restoring an older backup.
  throw invalidRefreshToken();
}

/** LEGACY (see the top of this file): spends an opaque token once and moves its session to generations. */
async function refreshLegacySession(services: SessionServices, tokenHash: string): Promise<AuthPayload> {
  const { prisma, tokens } = services;
  const now = new Date();
  const row = await prisma.refreshToken.findUnique({
    where: { tokenHash },
    select: { id: true, session: { select: { id: true, generation: true, revokedAt: true, expiresAt: true } } },
  });
  if (!row) throw invalidRefreshToken();
  const { session } = row;
  if (hasEnded(session, now)) throw sessionEnded();

  // Spending the row decides between concurrent refreshes; the row stays, rotated, so that the
  // token coming back again still ends the session.
  const user = await prisma.$transaction(async (tx) => {
    const spent = await tx.refreshToken.updateMany({ where: { id: row.id, rotatedAt: null }, data: { rotatedAt: now } });
    if (spent.count === 0) return null;
    const advanced = await advanceGeneration(tx, tokens, { sessionId: session.id, generation: session.generation }, now);
    // Revoked or expired since the read above: undo the spend.
    if (!advanced) throw sessionEnded();
    return advanced;
  });
  if (!user) return endForReuse(services, session.id);
  return authPayload(tokens, user, session.id, session.generation + 1, now);
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
  const sessionIds = new Set<string>();
  if (viewer) sessionIds.add(viewer.sessionId);
  if (refreshToken) {
    const session = await sessionOfRefreshToken(services, refreshToken);
    // A signed-in caller cannot end someone else's session with a token it found.
    if (session && (!viewer || session.userId === viewer.userId)) sessionIds.add(session.id);
    else if (!viewer) throw invalidRefreshToken();
  }
  if (sessionIds.size === 0) throw unauthenticated('SIGN_IN_REQUIRED');
  await revokeSessions(services, [...sessionIds], 'logout');
}

/**
 * Ends sessions: their refresh tokens and access tokens stop working, their push subscriptions,
 * devices and keys are removed (chat partners hear DEVICES_CHANGED), their sockets close.
 */
export async function revokeSessions(services: SessionServices, sessionIds: string[], reason: string) {
  await markRevoked(services.prisma, { id: { in: sessionIds } }, reason);
  await announceSessionsEnded(services, sessionIds);
}

/**
 * Revokes the live sessions `where` picks, through `db` (a transaction's client, so the revocation
 * commits with what caused it); returns their ids, for announceSessionsEnded once committed.
 * `reason`: logout, refresh_token_reuse, password_changed.
 */
export async function markRevoked(db: Pick<Prisma.TransactionClient, 'session'>, where: Prisma.SessionWhereInput, reason: string): Promise<string[]> {
  const ended = await db.session.updateManyAndReturn({
    where: { ...where, revokedAt: null },
    data: { revokedAt: new Date(), revokedReason: reason },
    select: { id: true },
  });
  return ended.map((session) => session.id);
}

/**
 * Once sessions have ended in the database (revoked or deleted): their cached entries go, here at
 * once and on other instances when the event reaches them; their push subscriptions, devices and
 * keys are removed; and their sockets close everywhere.
 */
export async function announceSessionsEnded(services: Pick<SessionServices, 'prisma' | 'events' | 'sessions'>, sessionIds: string[]) {
  if (sessionIds.length === 0) return;
  const { prisma, events, sessions } = services;
  sessions.forget(sessionIds);
  await prisma.pushSubscription.deleteMany({ where: { sessionId: { in: sessionIds } } });
  await removeDevicesOfSessions(services, sessionIds);
  await events.sessionsEnded(sessionIds);
}

/**
 * Moves a live session from `generation` to the next one and extends it, in one conditional UPDATE;
 * returns its user, or null when the session has ended or is no longer at that generation.
 */
async function advanceGeneration(
  db: Pick<Prisma.TransactionClient, '$queryRaw'>,
  tokens: TokenService,
  { sessionId, generation }: { sessionId: string; generation: number },
  now: Date,
): Promise<User | null> {
  const expiresAt = new Date(now.getTime() + tokens.refreshTokenTtlMs);
  const [user] = await db.$queryRaw<User[]>`
    WITH advanced AS (
      UPDATE "Session" SET "generation" = "generation" + 1, "lastRefreshAt" = ${now}, "lastSeenAt" = ${now}, "expiresAt" = ${expiresAt}
      WHERE "id" = ${sessionId} AND "generation" = ${generation} AND "revokedAt" IS NULL AND "expiresAt" > ${now}
      RETURNING "userId"
    )
    SELECT "User".* FROM "User" JOIN advanced ON "User"."id" = advanced."userId"`;
  return user ?? null;
}

/** The session a refresh token of ours names (spent or not), whatever its state; null if none. */
async function sessionOfRefreshToken({ prisma, tokens }: SessionServices, refreshToken: string) {
  const presented = tokens.readRefreshToken(refreshToken);
  if (!presented) return null;
  if (presented.kind === 'legacy') {
    const row = await prisma.refreshToken.findUnique({
      where: { tokenHash: presented.tokenHash },
      select: { session: { select: { id: true, userId: true } } },
    });
    return row?.session ?? null;
  }
  return prisma.session.findFirst({
    where: { id: presented.sessionId, generation: { gte: presented.generation } },
    select: { id: true, userId: true },
  });
}

async function authPayload(tokens: TokenService, user: User, sessionId: string, generation: number, now: Date): Promise<AuthPayload> {
  const access = await tokens.issueAccessToken({ userId: user.id, sessionId }, now);
  return {
    accessToken: access.token,
    accessTokenExpiresAt: access.expiresAt,
    refreshToken: tokens.issueRefreshToken(sessionId, generation),
    user,
    sessionId,
  };
}

async function endForReuse(services: SessionServices, sessionId: string): Promise<never> {
  await revokeSessions(services, [sessionId], 'refresh_token_reuse');
  throw unauthenticated('SESSION_ENDED', 'Refresh token was already used, so this session was ended for safety. Sign in again.');
}

const hasEnded = (session: { revokedAt: Date | null; expiresAt: Date }, now: Date) => session.revokedAt !== null || session.expiresAt <= now;
const invalidRefreshToken = () => unauthenticated('TOKEN_INVALID', 'Refresh token is invalid.');
const sessionEnded = () => unauthenticated('SESSION_ENDED', 'Session has ended. Sign in again.');
