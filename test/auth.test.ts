import { readdirSync, readFileSync } from 'node:fs';
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, gql, registerUser, startTestApp, TEST_JWT_SECRET, uniqueName } from './support/helpers.ts';
import { LOGIN, LOGOUT, REFRESH_TOKEN, REGISTER } from './support/operations.ts';

const ME = `{ me { id username displayName email status } }`;

let app: App;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.stop();
});

describe('register', () => {
  it('creates an account, signs it in, and shows the email to its owner only', async () => {
    const username = uniqueName();
    const result = await gql(app, REGISTER, {
      input: { email: `  ${username.toUpperCase()}@Example.COM `, username: username.toUpperCase(), password: 'a good passphrase', displayName: ' Ada ' },
    });
    expect(result.errors).toBeUndefined();
    const payload = result.data.register;
    expect(payload.user).toMatchObject({ username, displayName: 'Ada', email: `${username}@example.com` });
    expect(payload.refreshToken).toMatch(/^[0-9a-f-]{36}\.1\.[A-Za-z0-9_-]{43}$/);
    const expiresIn = new Date(payload.accessTokenExpiresAt).getTime() - Date.now();
    expect(expiresIn).toBeGreaterThan(14 * 60_000);
    expect(expiresIn).toBeLessThanOrEqual(15 * 60_000);

    const me = await gql(app, ME, {}, { token: payload.accessToken });
    expect(me.data.me).toMatchObject({ id: payload.user.id, email: `${username}@example.com`, status: 'OFFLINE' });

    const other = await registerUser(app);
    const seen = await gql(app, `query ($id: ID!) { user(id: $id) { id username email } }`, { id: payload.user.id }, { token: other.accessToken });
    expect(seen.data.user).toEqual({ id: payload.user.id, username, email: null });
  });

  it('stores an argon2id hash, never the password', async () => {
    const user = await registerUser(app);
    const row = await app.services.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(row.passwordHash).toMatch(/^\$argon2id\$v=19\$m=12288,t=3,p=1\$/);
    expect(row.passwordHash).not.toContain(user.password);
  });

  it('refuses a taken email or username with CONFLICT naming the field', async () => {
    const user = await registerUser(app);
    const sameEmail = await gql(app, REGISTER, {
      input: { email: user.email.toUpperCase(), username: uniqueName(), password: 'another passphrase' },
    });
    expect(codeOf(sameEmail)).toBe('CONFLICT');
    expect(sameEmail.errors?.[0]?.extensions?.field).toBe('input.email');

    const sameName = await gql(app, REGISTER, {
      input: { email: `${uniqueName()}@example.com`, username: user.username.toUpperCase(), password: 'another passphrase' },
    });
    expect(codeOf(sameName)).toBe('CONFLICT');
    expect(sameName.errors?.[0]?.extensions?.field).toBe('input.username');
  });

  it('lets exactly one of two concurrent registrations of the same username win', async () => {
    const username = uniqueName();
    const results = await Promise.all(
      [1, 2].map((n) =>
        gql(app, REGISTER, { input: { email: `${username}${n}@example.com`, username, password: 'a good passphrase' } }),
      ),
    );
    expect(results.filter((r) => r.data?.register).length).toBe(1);
    expect(results.map(codeOf).filter(Boolean)).toEqual(['CONFLICT']);
  });

  it.each([
    ['bad email', { email: 'not-an-email' }, 'input.email', /valid email/],
    ['email too long', { email: `${'a'.repeat(250)}@example.com` }, 'input.email', /too long/],
    ['short username', { username: 'ab' }, 'input.username', /3 to 32/],
    ['username with symbols', { username: 'bad name!' }, 'input.username', /3 to 32/],
    ['short password', { password: 'short' }, 'input.password', /at least 8/],
    ['huge password', { password: 'x1'.repeat(200) }, 'input.password', /at most 256/],
    ['repetitive password', { password: 'aaaaaaaaaaaa' }, 'input.password', /repetitive/],
    ['blank display name', { displayName: '   ' }, 'input.displayName', /cannot be empty/],
  ])('refuses %s with BAD_USER_INPUT', async (_case, override, field, message) => {
    const username = uniqueName();
    const input = { email: `${username}@example.com`, username, password: 'a good passphrase', ...override };
    const result = await gql(app, REGISTER, { input });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
    expect(result.errors?.[0]?.message).toMatch(message);
    expect(result.response.status).toBe(200);
  });

  it('refuses a password equal to the username', async () => {
    const username = uniqueName('longname');
    const result = await gql(app, REGISTER, { input: { email: `${username}@example.com`, username, password: username } });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.message).toMatch(/username or email/);
  });
});

describe('login', () => {
  it('accepts the username or the email, in any case', async () => {
    const user = await registerUser(app);
    for (const login of [user.username, user.email.toUpperCase()]) {
      const result = await gql(app, LOGIN, { input: { login, password: user.password } });
      expect(result.data.login.user.id).toBe(user.id);
      const me = await gql(app, ME, {}, { token: result.data.login.accessToken });
      expect(me.data.me.id).toBe(user.id);
    }
  });

  it('answers a wrong password and an unknown user alike', async () => {
    const user = await registerUser(app);
    const wrong = await gql(app, LOGIN, { input: { login: user.username, password: 'wrong password!' } });
    const unknown = await gql(app, LOGIN, { input: { login: uniqueName(), password: 'wrong password!' } });
    expect(codeOf(wrong)).toBe('UNAUTHENTICATED');
    expect(codeOf(unknown)).toBe('UNAUTHENTICATED');
    expect(wrong.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
  });

  it('re-hashes a password stored with other argon2id parameters when its owner signs in', async () => {
    const user = await registerUser(app);
    // As if the account was created before PASSWORD_HASH_* changed: OWASP's 19 MiB x 2 row.
    const oldHash = await app.services.pool.run('hashPassword', { password: user.password, memoryKib: 19_456, passes: 2 });
    await app.services.prisma.user.update({ where: { id: user.id }, data: { passwordHash: oldHash } });

    const result = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
    expect(result.data.login.user.id).toBe(user.id);
    // The upgrade runs after the login answered.
    let stored: string | null = oldHash;
    for (let attempt = 0; attempt < 250 && stored === oldHash; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stored = (await app.services.prisma.user.findUniqueOrThrow({ where: { id: user.id } })).passwordHash;
    }
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=12288,t=3,p=1\$/);
    const again = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
    expect(again.data.login.user.id).toBe(user.id);
    const wrong = await gql(app, LOGIN, { input: { login: user.username, password: 'wrong password!' } });
    expect(codeOf(wrong)).toBe('UNAUTHENTICATED');
  });

  it('asks for the missing field', async () => {
    const result = await gql(app, LOGIN, { input: { login: ' ', password: 'x' } });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('input.login');
  });
});

describe('refresh and logout', () => {
  it('rotates the refresh token; reusing the spent one ends the whole session', async () => {
    const user = await registerUser(app);
    const first = await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken });
    expect(first.errors).toBeUndefined();
    const rotated = first.data.refreshToken;
    expect(rotated.refreshToken).not.toBe(user.refreshToken);
    expect(rotated.user.id).toBe(user.id);
    expect((await gql(app, ME, {}, { token: rotated.accessToken })).data.me.id).toBe(user.id);

    const reuse = await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken });
    expect(codeOf(reuse)).toBe('UNAUTHENTICATED');
    expect(reuse.errors?.[0]?.message).toMatch(/already used/);

    // The family is dead: the newest refresh token and every access token of the session too.
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: rotated.refreshToken }))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(app, ME, {}, { token: rotated.accessToken }))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(app, ME, {}, { token: user.accessToken }))).toBe('UNAUTHENTICATED');
  });

  it('ends only the session whose token was reused', async () => {
    const user = await registerUser(app);
    const otherDevice = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
    await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken });
    await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken });
    expect((await gql(app, ME, {}, { token: otherDevice.data.login.accessToken })).data.me.id).toBe(user.id);
  });

  it('lets only one of two concurrent refreshes with the same token win, and ends the session', async () => {
    const user = await registerUser(app);
    const results = await Promise.all([1, 2].map(() => gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken })));
    expect(results.filter((r) => r.data?.refreshToken).length).toBe(1);
    expect(results.map(codeOf).filter(Boolean)).toEqual(['UNAUTHENTICATED']);
    const winner = results.find((r) => r.data?.refreshToken)!;
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: winner.data.refreshToken.refreshToken }))).toBe('UNAUTHENTICATED');
  });

  it('refuses an unknown refresh token', async () => {
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: 'not-a-token' }))).toBe('UNAUTHENTICATED');
  });

  it('logout stops the access token at once and the refresh token too', async () => {
    const user = await registerUser(app);
    const out = await gql(app, LOGOUT, {}, { token: user.accessToken });
    expect(out.data.logout).toBe(true);
    expect(codeOf(await gql(app, ME, {}, { token: user.accessToken }))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken }))).toBe('UNAUTHENTICATED');
  });

  it('logout with only a refresh token ends that session', async () => {
    const user = await registerUser(app);
    expect((await gql(app, LOGOUT, { refreshToken: user.refreshToken })).data.logout).toBe(true);
    expect(codeOf(await gql(app, ME, {}, { token: user.accessToken }))).toBe('UNAUTHENTICATED');
  });

  it('logout with nothing to end is UNAUTHENTICATED', async () => {
    expect(codeOf(await gql(app, LOGOUT, {}))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(app, LOGOUT, { refreshToken: 'unknown' }))).toBe('UNAUTHENTICATED');
  });
});

describe('access tokens', () => {
  const key = new TextEncoder().encode(TEST_JWT_SECRET);
  const now = () => Math.floor(Date.now() / 1000);
  const sign = (claims: { sub: string; sid: string }, edit: (jwt: SignJWT) => SignJWT = (j) => j, secret = key) =>
    edit(new SignJWT({ sid: claims.sid }).setProtectedHeader({ alg: 'HS256' }).setSubject(claims.sub).setIssuer('kocmoc').setAudience('kocmoc-api').setIssuedAt().setExpirationTime('5m')).sign(secret);

  it('accepts a token signed like ours (sanity check of the forgeries below)', async () => {
    const user = await registerUser(app);
    const sid = (await app.services.prisma.session.findFirstOrThrow({ where: { userId: user.id } })).id;
    const token = await sign({ sub: user.id, sid });
    expect((await gql(app, ME, {}, { token })).data.me.id).toBe(user.id);
  });

  it.each([
    ['malformed', async () => 'not.a.jwt'],
    ['garbage', async () => '!!!'],
    ['expired', async (c: { sub: string; sid: string }) => sign(c, (j) => j.setIssuedAt(now() - 3600).setExpirationTime(now() - 60))],
    ['forged (other secret)', async (c: { sub: string; sid: string }) => sign(c, undefined, new TextEncoder().encode('x'.repeat(64)))],
    ['alg none', async (c: { sub: string; sid: string }) => new UnsecuredJWT({ sid: c.sid }).setSubject(c.sub).setIssuer('kocmoc').setAudience('kocmoc-api').setIssuedAt().setExpirationTime('5m').encode()],
    ['wrong issuer', async (c: { sub: string; sid: string }) => sign(c, (j) => j.setIssuer('evil'))],
    ['wrong audience', async (c: { sub: string; sid: string }) => sign(c, (j) => j.setAudience('evil'))],
    ['session of another user', async (c: { sub: string; sid: string }) => sign({ ...c, sub: 'someone-else' })],
  ])('refuses a %s token with UNAUTHENTICATED', async (_case, makeToken) => {
    const user = await registerUser(app);
    const sid = (await app.services.prisma.session.findFirstOrThrow({ where: { userId: user.id } })).id;
    const token = await makeToken({ sub: user.id, sid });
    const result = await gql(app, ME, {}, { token });
    expect(codeOf(result)).toBe('UNAUTHENTICATED');
    expect(result.data).toBeNull();
  });

  it('refuses a non-Bearer authorization header', async () => {
    const result = await gql(app, ME, {}, { headers: { authorization: 'Basic abc' } });
    expect(codeOf(result)).toBe('UNAUTHENTICATED');
    expect(result.errors?.[0]?.message).toMatch(/Bearer/);
  });

  it('requires a token for me', async () => {
    expect(codeOf(await gql(app, ME))).toBe('UNAUTHENTICATED');
  });

  it('still lets a client with a stale token sign in', async () => {
    const user = await registerUser(app);
    const result = await gql(app, LOGIN, { input: { login: user.username, password: user.password } }, { token: 'stale' });
    expect(result.data.login.user.id).toBe(user.id);
  });
});

describe('hashing queue bound', () => {
  it.runIf(process.platform === 'linux')('runs the hashing threads at a lower priority than the event loop', async () => {
    await gql(app, LOGIN, { input: { login: uniqueName(), password: 'any password' } });
    const niceOf = (tid: string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
    const niceValues = readdirSync('/proc/self/task').map(niceOf);
    expect(niceOf(String(process.pid))).toBe(0);
    expect(niceValues.filter((nice) => nice === 10).length).toBeGreaterThanOrEqual(app.services.pool.threads);
  });

  it('answers RATE_LIMITED instead of queueing more than the bound', async () => {
    // A costly hash (about 40 ms), so the 40 logins are far more work than the bound even when a
    // loaded machine spreads their arrival out.
    const small = await startTestApp({ WORKER_THREADS: '1', WORK_QUEUE_MAX_MS: '100', PASSWORD_HASH_MEMORY_KIB: '65536', PASSWORD_HASH_PASSES: '3' });
    try {
      const user = await registerUser(small);
      const started = performance.now();
      const answeredAfter: Record<string, number[]> = { OK: [], RATE_LIMITED: [] };
      const results = await Promise.all(
        Array.from({ length: 40 }, async () => {
          const result = await gql(small, LOGIN, { input: { login: user.username, password: user.password } });
          answeredAfter[result.data?.login ? 'OK' : (codeOf(result) ?? 'other')]?.push(performance.now() - started);
          return result;
        }),
      );
      const codes = results.map((r) => (r.data?.login ? 'OK' : codeOf(r)));
      // Refused on arrival, not after waiting for the queue to drain.
      expect(Math.max(...answeredAfter.RATE_LIMITED!)).toBeLessThan(Math.max(...answeredAfter.OK!));
      expect(codes).toContain('OK');
      expect(codes).toContain('RATE_LIMITED');
      expect(codes.every((c) => c === 'OK' || c === 'RATE_LIMITED')).toBe(true);
      const limited = results.find((r) => codeOf(r) === 'RATE_LIMITED')!;
      expect(limited.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    } finally {
      await small.stop();
    }
  });
});
