// Refresh tokens that name their session and generation: one row per session however often it
// refreshes, reuse of any older generation ends the session, a forged token ends nothing, and
// tokens issued before generations (LEGACY, "RefreshToken" rows) still work once.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createLegacySession, gql, registerUser, startTestApp, type GraphQLResponse } from './support/helpers.ts';
import { LOGIN, LOGOUT, REFRESH_TOKEN, SET_STATUS } from './support/operations.ts';

const ME = `{ me { id } }`;
const TOKEN = /^([0-9a-f-]{36})\.(\d+)\.([A-Za-z0-9_-]{43})$/;

let app: App;
let base: string;
beforeAll(async () => {
  app = await startTestApp();
  const { port } = await app.start();
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await app?.stop();
});

/** The session id and generation a token names (its format, not its validity). */
function parts(refreshToken: string) {
  const match = TOKEN.exec(refreshToken);
  if (!match) throw new Error(`not a generation token: ${refreshToken}`);
  return { sessionId: match[1]!, generation: Number(match[2]), mac: match[3]! };
}

async function refresh(refreshToken: string) {
  const result = await gql(app, REFRESH_TOKEN, { refreshToken });
  if (!result.data?.refreshToken) throw new Error(`refresh failed: ${JSON.stringify(result.errors)}`);
  return result.data.refreshToken as { accessToken: string; refreshToken: string };
}

const session = (id: string) => app.services.prisma.session.findUniqueOrThrow({ where: { id } });
const message = (result: GraphQLResponse) => result.errors?.[0]?.message;

describe('generation tokens', () => {
  it('name the session and its generation, and the row holds the generation but no token material', async () => {
    const user = await registerUser(app);
    const first = parts(user.refreshToken);
    expect(first.generation).toBe(1);
    const second = parts((await refresh(user.refreshToken)).refreshToken);
    expect(second).toMatchObject({ sessionId: first.sessionId, generation: 2 });
    expect(second.mac).not.toBe(first.mac);

    const row = await session(first.sessionId);
    expect(row).toMatchObject({ userId: user.id, generation: 2, revokedAt: null });
    const stored = JSON.stringify(row);
    for (const mac of [first.mac, second.mac]) expect(stored).not.toContain(mac);
  });

  it('answers with the user as the database has it', async () => {
    const user = await registerUser(app);
    await gql(app, SET_STATUS, { status: 'BUSY' }, { token: user.accessToken });
    const fields = 'id username displayName email createdAt lastSeenAt chosenStatus';
    const refreshed = await gql(app, `mutation ($t: String!) { refreshToken(refreshToken: $t) { accessToken user { ${fields} } } }`, { t: user.refreshToken });
    const me = await gql(app, `{ me { ${fields} } }`, {}, { token: refreshed.data.refreshToken.accessToken });
    expect(refreshed.data.refreshToken.user).toEqual(me.data.me);
    expect(me.data.me).toMatchObject({ id: user.id, chosenStatus: 'BUSY', createdAt: expect.any(String) });
  });

  it('keeps one row per session however many times it refreshes', async () => {
    const user = await registerUser(app);
    const { sessionId } = parts(user.refreshToken);
    const { prisma } = app.services;
    const rows = async () => ({
      sessions: await prisma.session.count({ where: { userId: user.id } }),
      refreshTokens: await prisma.refreshToken.count({ where: { session: { userId: user.id } } }),
    });
    const before = await rows();
    let current = user.refreshToken;
    for (let i = 0; i < 40; i++) current = (await refresh(current)).refreshToken;

    expect(await rows()).toEqual(before);
    expect(before).toEqual({ sessions: 1, refreshTokens: 0 });
    expect(parts(current).generation).toBe(41);
    expect((await session(sessionId)).generation).toBe(41);
  });

  it('ends the whole session when any older generation comes back', async () => {
    const user = await registerUser(app);
    const issued = [user.refreshToken];
    for (let i = 0; i < 4; i++) issued.push((await refresh(issued.at(-1)!)).refreshToken);
    const latest = await refresh(issued.at(-1)!);

    const reuse = await gql(app, REFRESH_TOKEN, { refreshToken: issued[2] });
    expect(codeOf(reuse)).toBe('UNAUTHENTICATED');
    expect(message(reuse)).toMatch(/already used/);
    expect(await session(parts(user.refreshToken).sessionId)).toMatchObject({ revokedReason: 'refresh_token_reuse' });
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: latest.refreshToken }))).toMatch(/Session has ended/);
    expect(codeOf(await gql(app, ME, {}, { token: latest.accessToken }))).toBe('UNAUTHENTICATED');
  });

  it('refuses a forged secret with a real session id as invalid, and the session goes on', async () => {
    const user = await registerUser(app);
    const spent = user.refreshToken;
    const current = await refresh(spent);
    const { sessionId, generation, mac } = parts(current.refreshToken);
    const stranger = parts((await registerUser(app)).refreshToken);
    const flip = (text: string) => (text[0] === 'A' ? 'B' : 'A') + text.slice(1);
    const forgeries = [
      `${sessionId}.${generation}.${flip(mac)}`, // the current generation, a wrong secret
      `${sessionId}.1.${flip(parts(spent).mac)}`, // an older generation, a wrong secret: must not count as reuse
      `${sessionId}.1.${mac}`, // the current secret moved to another generation
      `${sessionId}.${generation + 1}.${mac}`, // ... or to the next one
      `${sessionId}.${stranger.generation}.${stranger.mac}`, // another session's secret
      `${sessionId}.${generation}.${mac}=`, // another spelling of the same secret
      `${sessionId}.${generation}.${mac}.x`,
      `${sessionId.toUpperCase()}.${generation}.${mac}`,
      `${sessionId}.0${generation}.${mac}`,
    ];
    for (const forged of forgeries) {
      const result = await gql(app, REFRESH_TOKEN, { refreshToken: forged });
      expect(codeOf(result), forged).toBe('UNAUTHENTICATED');
      expect(message(result), forged).toBe('Refresh token is invalid.');
      expect(codeOf(await gql(app, LOGOUT, { refreshToken: forged })), forged).toBe('UNAUTHENTICATED');
    }

    expect(await session(sessionId)).toMatchObject({ revokedAt: null, generation });
    expect((await gql(app, ME, {}, { token: current.accessToken })).data.me.id).toBe(user.id);
    expect(parts((await refresh(current.refreshToken)).refreshToken).generation).toBe(generation + 1);
  });

  it('lets exactly one of several concurrent refreshes with one token win, over HTTP, and ends the session', async () => {
    const user = await registerUser(app);
    const results = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const response = await fetch(`${base}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: REFRESH_TOKEN, variables: { refreshToken: user.refreshToken } }),
        });
        return (await response.json()) as GraphQLResponse;
      }),
    );
    const winners = results.filter((r) => r.data?.refreshToken);
    expect(winners).toHaveLength(1);
    const losers = results.filter((r) => !r.data?.refreshToken);
    expect(losers.map(codeOf)).toEqual(['UNAUTHENTICATED', 'UNAUTHENTICATED', 'UNAUTHENTICATED']);
    // The first loser to look finds a spent generation; one that looks after it may find the session already ended.
    expect(losers.map(message)).toContainEqual(expect.stringMatching(/already used/));
    expect(losers.map(message)).toEqual(losers.map(() => expect.stringMatching(/already used|Session has ended/)));
    // The losers presented a spent generation: the winner's new token dies with the session.
    expect(parts(winners[0]!.data.refreshToken.refreshToken).generation).toBe(2);
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: winners[0]!.data.refreshToken.refreshToken }))).toBe('UNAUTHENTICATED');
    expect(await session(parts(user.refreshToken).sessionId)).toMatchObject({ revokedReason: 'refresh_token_reuse' });
  });

  it('refuses a token of a session that ended, without counting it as reuse', async () => {
    const user = await registerUser(app);
    const { sessionId } = parts(user.refreshToken);
    await app.services.prisma.session.update({ where: { id: sessionId }, data: { expiresAt: new Date(Date.now() - 1_000) } });
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken }))).toMatch(/Session has ended/);
    expect(await session(sessionId)).toMatchObject({ revokedAt: null, generation: 1 });
  });
});

describe('logout with a refresh token', () => {
  it('ends the session the token names, current or spent', async () => {
    const user = await registerUser(app);
    const current = await refresh(user.refreshToken);
    expect((await gql(app, LOGOUT, { refreshToken: current.refreshToken })).data.logout).toBe(true);
    expect(codeOf(await gql(app, ME, {}, { token: current.accessToken }))).toBe('UNAUTHENTICATED');
    expect(await session(parts(user.refreshToken).sessionId)).toMatchObject({ revokedReason: 'logout' });

    const other = await registerUser(app);
    await refresh(other.refreshToken);
    expect((await gql(app, LOGOUT, { refreshToken: other.refreshToken })).data.logout).toBe(true);
    expect(await session(parts(other.refreshToken).sessionId)).toMatchObject({ revokedReason: 'logout' });
  });

  it("does not let a signed-in caller end someone else's session", async () => {
    const victim = await registerUser(app);
    const caller = await registerUser(app);
    const legacy = await createLegacySession(app, victim.id);
    for (const token of [victim.refreshToken, legacy.live]) {
      const callerSession = await gql(app, LOGIN, { input: { login: caller.username, password: caller.password } });
      const out = await gql(app, LOGOUT, { refreshToken: token }, { token: callerSession.data.login.accessToken });
      // The caller's own session ends; the victim's does not.
      expect(out.data.logout).toBe(true);
      expect(codeOf(await gql(app, ME, {}, { token: callerSession.data.login.accessToken }))).toBe('UNAUTHENTICATED');
    }
    expect((await gql(app, ME, {}, { token: victim.accessToken })).data.me.id).toBe(victim.id);
    expect(await session(legacy.sessionId)).toMatchObject({ revokedAt: null });
  });
});

describe('legacy tokens (issued before generations)', () => {
  it('are accepted once and rotated into a generation token; coming back, they end the session', async () => {
    const user = await registerUser(app);
    const legacy = await createLegacySession(app, user.id, 2);
    const { prisma } = app.services;

    const moved = await refresh(legacy.live);
    expect(parts(moved.refreshToken)).toMatchObject({ sessionId: legacy.sessionId, generation: 2 });
    expect((await gql(app, ME, {}, { token: moved.accessToken })).data.me.id).toBe(user.id);
    // No row was added; the spent one stays, rotated, so that it is still recognised.
    expect(await prisma.refreshToken.count({ where: { sessionId: legacy.sessionId } })).toBe(3);
    expect(await prisma.refreshToken.count({ where: { sessionId: legacy.sessionId, rotatedAt: null } })).toBe(0);

    const next = await refresh(moved.refreshToken);
    expect(parts(next.refreshToken).generation).toBe(3);
    expect(await prisma.refreshToken.count({ where: { sessionId: legacy.sessionId } })).toBe(3);

    const reuse = await gql(app, REFRESH_TOKEN, { refreshToken: legacy.live });
    expect(message(reuse)).toMatch(/already used/);
    expect(await session(legacy.sessionId)).toMatchObject({ revokedReason: 'refresh_token_reuse' });
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: next.refreshToken }))).toBe('UNAUTHENTICATED');
  });

  it('end the session when one spent before the upgrade comes back', async () => {
    const user = await registerUser(app);
    const legacy = await createLegacySession(app, user.id, 2);
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: legacy.spent[0] }))).toMatch(/already used/);
    expect(await session(legacy.sessionId)).toMatchObject({ revokedReason: 'refresh_token_reuse' });
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: legacy.live }))).toMatch(/Session has ended/);
  });

  it('let exactly one of two concurrent refreshes win', async () => {
    const user = await registerUser(app);
    const legacy = await createLegacySession(app, user.id);
    const results = await Promise.all([1, 2].map(() => gql(app, REFRESH_TOKEN, { refreshToken: legacy.live })));
    expect(results.filter((r) => r.data?.refreshToken)).toHaveLength(1);
    expect(results.map(message).filter(Boolean)).toEqual([expect.stringMatching(/already used/)]);
    expect(await session(legacy.sessionId)).toMatchObject({ revokedReason: 'refresh_token_reuse' });
  });

  it('log out the session they belong to', async () => {
    const user = await registerUser(app);
    const legacy = await createLegacySession(app, user.id);
    expect((await gql(app, LOGOUT, { refreshToken: legacy.live })).data.logout).toBe(true);
    expect(await session(legacy.sessionId)).toMatchObject({ revokedReason: 'logout' });
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: legacy.live }))).toMatch(/Session has ended/);
  });

  it('that were never issued are invalid', async () => {
    const unknown = randomBytes(32).toString('base64url');
    expect(message(await gql(app, REFRESH_TOKEN, { refreshToken: unknown }))).toBe('Refresh token is invalid.');
    expect(codeOf(await gql(app, LOGOUT, { refreshToken: unknown }))).toBe('UNAUTHENTICATED');
  });
});
