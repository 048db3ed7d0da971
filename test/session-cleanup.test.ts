import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { DEAD_SESSION_RETENTION_MS, deleteDeadSessions, startSessionCleanup } from '../src/auth/session-cleanup.ts';
import { hashRefreshToken } from '../src/auth/tokens.ts';
import type { Services } from '../src/services.ts';
import { codeOf, createLegacySession, gql, registerUser, startTestApp, type TestUser } from './support/helpers.ts';
import { LOGIN, REFRESH_TOKEN } from './support/operations.ts';

const DAY = 24 * 60 * 60_000;

let app: App;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.stop();
});

const daysAgo = (days: number) => new Date(Date.now() - days * DAY);
const purgeCutoff = () => new Date(Date.now() - DEAD_SESSION_RETENTION_MS);

/** Signs the user in on another device: a new session, and its refresh token. */
async function login(user: TestUser) {
  const result = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
  if (!result.data?.login) throw new Error(`login failed: ${JSON.stringify(result.errors)}`);
  const refreshToken: string = result.data.login.refreshToken;
  return { refreshToken, sessionId: await sessionOf(refreshToken) };
}

async function sessionOf(refreshToken: string) {
  const presented = app.services.tokens.readRefreshToken(refreshToken);
  if (presented?.kind !== 'generation') throw new Error(`not a generation token: ${refreshToken}`);
  return presented.sessionId;
}

async function refresh(refreshToken: string): Promise<string> {
  const result = await gql(app, REFRESH_TOKEN, { refreshToken });
  if (!result.data?.refreshToken) throw new Error(`refresh failed: ${JSON.stringify(result.errors)}`);
  return result.data.refreshToken.refreshToken;
}

describe('deleteDeadSessions', () => {
  it('deletes sessions ended before the cut-off with their push subscriptions and legacy tokens, and keeps the rest', async () => {
    const user = await registerUser(app);
    const live = { refreshToken: user.refreshToken, sessionId: await sessionOf(user.refreshToken) };
    const revokedLongAgo = await login(user);
    const revokedLongAgoSpent = revokedLongAgo.refreshToken;
    revokedLongAgo.refreshToken = await refresh(revokedLongAgo.refreshToken);
    const expiredLongAgo = await login(user);
    const revokedRecently = await login(user);
    const expiredRecently = await login(user);
    const legacyRevokedLongAgo = await createLegacySession(app, user.id, 1);
    const legacyRevokedRecently = await createLegacySession(app, user.id, 1);
    const { prisma } = app.services;
    await prisma.pushSubscription.create({
      data: { userId: user.id, sessionId: revokedLongAgo.sessionId, endpoint: `https://push.test/${revokedLongAgo.sessionId}`, p256dh: 'key', auth: 'secret' },
    });
    for (const id of [revokedLongAgo.sessionId, legacyRevokedLongAgo.sessionId]) {
      await prisma.session.update({ where: { id }, data: { revokedAt: daysAgo(8), revokedReason: 'logout' } });
    }
    await prisma.session.update({ where: { id: expiredLongAgo.sessionId }, data: { expiresAt: daysAgo(8) } });
    for (const id of [revokedRecently.sessionId, legacyRevokedRecently.sessionId]) {
      await prisma.session.update({ where: { id }, data: { revokedAt: daysAgo(1 / 24), revokedReason: 'logout' } });
    }
    await prisma.session.update({ where: { id: expiredRecently.sessionId }, data: { expiresAt: daysAgo(6) } });

    expect(await deleteDeadSessions(app.services, purgeCutoff())).toBeGreaterThanOrEqual(3);

    const sessions = await prisma.session.findMany({ where: { userId: user.id }, select: { id: true } });
    expect(sessions.map((session) => session.id).sort()).toEqual(
      [live.sessionId, revokedRecently.sessionId, expiredRecently.sessionId, legacyRevokedRecently.sessionId].sort(),
    );
    expect(await prisma.pushSubscription.count({ where: { sessionId: revokedLongAgo.sessionId } })).toBe(0);
    expect(await prisma.refreshToken.count({ where: { sessionId: legacyRevokedLongAgo.sessionId } })).toBe(0);
    expect(await prisma.refreshToken.count({ where: { sessionId: legacyRevokedRecently.sessionId } })).toBe(2);

    // The live session still refreshes; a recently ended one still says so; a deleted one is unknown.
    await expect(refresh(live.refreshToken)).resolves.toMatch(/^[0-9a-f-]{36}\.2\.[A-Za-z0-9_-]{43}$/);
    for (const token of [revokedRecently.refreshToken, legacyRevokedRecently.live]) {
      expect(errorMessage(await gql(app, REFRESH_TOKEN, { refreshToken: token }))).toMatch(/Session has ended/);
    }
    const deleted = [revokedLongAgo.refreshToken, revokedLongAgoSpent, expiredLongAgo.refreshToken, legacyRevokedLongAgo.live, ...legacyRevokedLongAgo.spent];
    for (const token of deleted) {
      const result = await gql(app, REFRESH_TOKEN, { refreshToken: token });
      expect(codeOf(result)).toBe('UNAUTHENTICATED');
      expect(errorMessage(result)).toMatch(/invalid/);
    }
  });

  it('keeps a live session whatever its age, so a token spent long ago still ends it', async () => {
    const user = await registerUser(app);
    const sessionId = await sessionOf(user.refreshToken);
    let current = user.refreshToken;
    for (let i = 0; i < 3; i++) current = await refresh(current);
    const legacy = await createLegacySession(app, user.id, 3);
    const { prisma } = app.services;
    // As if the sessions had started, and the legacy tokens been spent, long ago (the sessions
    // themselves are kept alive by their refreshes).
    await prisma.session.updateMany({ where: { id: { in: [sessionId, legacy.sessionId] } }, data: { createdAt: daysAgo(60) } });
    await prisma.refreshToken.updateMany({ where: { sessionId: legacy.sessionId, rotatedAt: { not: null } }, data: { createdAt: daysAgo(60), rotatedAt: daysAgo(59) } });

    await deleteDeadSessions(app.services, purgeCutoff());

    expect(await prisma.refreshToken.count({ where: { sessionId: legacy.sessionId } })).toBe(4);
    current = await refresh(current);
    for (const spent of [user.refreshToken, legacy.spent[0]!]) {
      const reuse = await gql(app, REFRESH_TOKEN, { refreshToken: spent });
      expect(errorMessage(reuse)).toMatch(/already used/);
    }
    const ended = await prisma.session.findMany({ where: { id: { in: [sessionId, legacy.sessionId] } }, select: { revokedReason: true } });
    expect(ended).toEqual([{ revokedReason: 'refresh_token_reuse' }, { revokedReason: 'refresh_token_reuse' }]);
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: current }))).toBe('UNAUTHENTICATED');
  });

  it('works through more dead sessions than one batch holds', async () => {
    const user = await registerUser(app);
    const liveSessionId = await sessionOf(user.refreshToken);
    const { prisma } = app.services;
    const dead = Array.from({ length: 1_201 }, () => ({ userId: user.id, expiresAt: daysAgo(40), lastRefreshAt: daysAgo(70) }));
    const sessions = await prisma.session.createManyAndReturn({ data: dead, select: { id: true } });
    await prisma.refreshToken.createMany({
      data: sessions.map((session) => ({ sessionId: session.id, tokenHash: hashRefreshToken(`dead-${session.id}`) })),
    });

    expect(await deleteDeadSessions(app.services, purgeCutoff())).toBeGreaterThanOrEqual(1_201);

    expect(await prisma.session.findMany({ where: { userId: user.id }, select: { id: true } })).toEqual([{ id: liveSessionId }]);
    expect(await prisma.refreshToken.count({ where: { sessionId: { in: sessions.map((session) => session.id) } } })).toBe(0);
  });
});

describe('startSessionCleanup', () => {
  it('purges on its interval and stops', async () => {
    const user = await registerUser(app);
    const sessionId = await sessionOf(user.refreshToken);
    await app.services.prisma.session.update({ where: { id: sessionId }, data: { revokedAt: daysAgo(30) } });

    const stop = startSessionCleanup(app.services, { intervalMs: 20 });
    try {
      await vi.waitFor(async () => expect(await app.services.prisma.session.count({ where: { id: sessionId } })).toBe(0), { timeout: 5_000 });
    } finally {
      await stop();
    }
  });

  it('logs a failed run instead of throwing', async () => {
    const warn = vi.fn();
    const failing = {
      prisma: { session: { findMany: () => Promise.reject(new Error('database is away')) } },
      logger: { warn, info: vi.fn() },
    } as unknown as Pick<Services, 'prisma' | 'logger'>;

    const stop = startSessionCleanup(failing, { intervalMs: 10 });
    try {
      await vi.waitFor(() => expect(warn).toHaveBeenCalledWith(expect.objectContaining({ err: expect.any(Error) }), 'ended session clean-up failed'));
    } finally {
      await stop();
    }
  });
});

function errorMessage(result: { errors?: Array<{ message: string }> }) {
  return result.errors?.[0]?.message;
}
