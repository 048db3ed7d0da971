// changePassword: the current password checked, the registration rules applied, every other
// session ended at once (tokens and sockets), the caller's kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, gql, registerUser, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { LOGIN, REFRESH_TOKEN } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const CHANGE_PASSWORD = 'mutation ($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }';
const ME = '{ me { id } }';
const NEW_PASSWORD = 'a brand new passphrase';

let app: App;
let url: string;
const sockets = openConnections();

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp({ PUSH_ENABLED: 'false' }));
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

async function login(user: TestUser, password = user.password) {
  return gql(app, LOGIN, { input: { login: user.username, password } });
}

async function secondDevice(user: TestUser) {
  const result = await login(user);
  if (!result.data?.login) throw new Error(`login failed: ${JSON.stringify(result.errors)}`);
  return result.data.login as { accessToken: string; refreshToken: string };
}

const change = (user: TestUser, current: string, next: string) => gql(app, CHANGE_PASSWORD, { c: current, n: next }, { token: user.accessToken });

describe('changePassword', () => {
  it('sets the new password and ends every other session at once, keeping the caller signed in', async () => {
    const user = await registerUser(app);
    const other = await secondDevice(user);
    const third = await secondDevice(user);
    const otherSocket = sockets.connect(url, other.accessToken);
    const ownSocket = sockets.connect(url, user.accessToken);
    await Promise.all([otherSocket.connected, ownSocket.connected]);
    // Both sessions work before the change.
    expect((await gql(app, ME, {}, { token: other.accessToken })).data.me.id).toBe(user.id);

    const result = await change(user, user.password, NEW_PASSWORD);
    expect(result.errors).toBeUndefined();
    expect(result.data.changePassword).toBe(true);

    // The other sessions' access tokens stop working at once (no wait for the session cache),
    // their refresh tokens are refused, and their sockets close with 4401.
    for (const session of [other, third]) {
      const me = await gql(app, ME, {}, { token: session.accessToken });
      expect(codeOf(me)).toBe('UNAUTHENTICATED');
      expect(codeOf(await gql(app, REFRESH_TOKEN, { refreshToken: session.refreshToken }))).toBe('UNAUTHENTICATED');
    }
    expect(await otherSocket.closed).toBe(4401);
    const stillOpen = subscribe(ownSocket, `subscription { chatEvents { type } }`);
    await settle();
    expect(stillOpen.results).toEqual([]);
    expect(await Promise.race([ownSocket.closed, settle(200).then(() => 'open')])).toBe('open');

    // The caller's own session goes on; its refresh token still rotates.
    expect((await gql(app, ME, {}, { token: user.accessToken })).data.me.id).toBe(user.id);
    expect((await gql(app, REFRESH_TOKEN, { refreshToken: user.refreshToken })).data.refreshToken.refreshToken).toBeTruthy();

    // The old password no longer signs in; the new one does.
    expect(codeOf(await login(user))).toBe('UNAUTHENTICATED');
    expect((await login(user, NEW_PASSWORD)).data.login.user.id).toBe(user.id);
    const sessions = await app.services.prisma.session.findMany({ where: { userId: user.id, revokedReason: 'password_changed' } });
    expect(sessions).toHaveLength(2);
  });

  it('refuses a wrong current password and changes nothing', async () => {
    const user = await registerUser(app);
    const other = await secondDevice(user);
    const result = await change(user, 'not my password at all', NEW_PASSWORD);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('currentPassword');
    expect((await gql(app, ME, {}, { token: other.accessToken })).data.me.id).toBe(user.id);
    expect((await login(user)).data.login.user.id).toBe(user.id);
    expect(codeOf(await change(user, '', NEW_PASSWORD))).toBe('BAD_USER_INPUT');
  });

  it.each([
    ['short', 'Password must be at least 8'],
    ['aaaaaaaaaaaa', 'too repetitive'],
    ['x'.repeat(257), 'at most 256'],
  ])('applies the registration rules to the new password (%s)', async (next, message) => {
    const user = await registerUser(app);
    const result = await change(user, user.password, next);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('newPassword');
    expect(result.errors?.[0]?.message).toContain(message);
    expect((await login(user)).data.login.user.id).toBe(user.id);
  });

  it('refuses the username or the current password as the new one', async () => {
    const user = await registerUser(app);
    const same = await change(user, user.password, user.password);
    expect(same.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'newPassword' });
    const username = await change(user, user.password, user.username);
    expect(username.errors?.[0]?.message).toMatch(/username or email/);
  });

  it('requires sign-in', async () => {
    expect(codeOf(await gql(app, CHANGE_PASSWORD, { c: 'whatever1', n: NEW_PASSWORD }))).toBe('UNAUTHENTICATED');
  });
});
