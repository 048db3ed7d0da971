// Finding 6 of issue #14: registering another user's push endpoint moved it to the new user, and
// the owner's unregisterPushSubscription then answered false. Now it stays with the live session
// that holds it, and moves only once that session has ended (logout removes its subscriptions).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, gql, registerUser, startTestApp, type TestUser } from './support/helpers.ts';
import { LOGIN, LOGOUT } from './support/operations.ts';
import { newDeviceKeys } from './support/push-service.ts';

const REGISTER = `mutation ($input: PushSubscriptionInput!) { registerPushSubscription(input: $input) { id endpoint } }`;
const UNREGISTER = `mutation ($e: String!) { unregisterPushSubscription(endpoint: $e) }`;
let app: App;
beforeAll(async () => {
  // Nothing is ever pushed here (no messages): the endpoints only need to pass registration.
  app = await startTestApp({ PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true' });
});
afterAll(() => app?.stop());

const freshEndpoint = () => `https://127.0.0.1:9/device/${newDeviceKeys().id}`;
const register = (token: string, endpoint: string) => {
  const { p256dh, auth } = newDeviceKeys();
  return gql(app, REGISTER, { input: { endpoint, keys: { p256dh, auth } } }, { token });
};
const ownerOf = async (endpoint: string) =>
  (await app.services.prisma.pushSubscription.findUnique({ where: { endpoint }, select: { userId: true, sessionId: true } })) ?? null;

describe('a push endpoint held by a live session', () => {
  let alice: TestUser;
  let mallory: TestUser;
  beforeAll(async () => {
    [alice, mallory] = await Promise.all([registerUser(app), registerUser(app)]);
  });

  it('cannot be taken over by another account (CONFLICT), and stays the owner’s to unregister', async () => {
    const endpoint = freshEndpoint();
    expect((await register(alice.accessToken, endpoint)).data?.registerPushSubscription.endpoint).toBe(endpoint);
    // The attack as described: the same endpoint registered by someone else.
    const takeover = await register(mallory.accessToken, endpoint);
    expect(codeOf(takeover)).toBe('CONFLICT');
    expect(takeover.errors?.[0]?.extensions?.field).toBe('input.endpoint');
    expect((await ownerOf(endpoint))?.userId).toBe(alice.id);
    expect((await gql(app, UNREGISTER, { e: endpoint }, { token: mallory.accessToken })).data.unregisterPushSubscription).toBe(false);
    expect((await gql(app, UNREGISTER, { e: endpoint }, { token: alice.accessToken })).data.unregisterPushSubscription).toBe(true);
  });

  it('moves freely between sessions of the same account', async () => {
    const endpoint = freshEndpoint();
    await register(alice.accessToken, endpoint);
    const second = await gql(app, LOGIN, { input: { login: alice.username, password: alice.password } });
    const moved = await register(second.data.login.accessToken, endpoint);
    expect(moved.data?.registerPushSubscription.endpoint).toBe(endpoint);
    const owner = await ownerOf(endpoint);
    expect(owner?.userId).toBe(alice.id);
    expect(owner?.sessionId).not.toBe((await app.services.prisma.session.findFirst({ where: { userId: alice.id }, orderBy: { createdAt: 'asc' } }))?.id);
  });

  it('is removed when its session logs out, and then free for another account', async () => {
    const bob = await registerUser(app);
    const endpoint = freshEndpoint();
    await register(bob.accessToken, endpoint);
    expect((await gql(app, LOGOUT, {}, { token: bob.accessToken })).data.logout).toBe(true);
    expect(await ownerOf(endpoint)).toBeNull();
    expect((await register(mallory.accessToken, endpoint)).data?.registerPushSubscription.endpoint).toBe(endpoint);
    expect((await ownerOf(endpoint))?.userId).toBe(mallory.id);
  });

  it('moves to another account once the holding session has expired', async () => {
    const carol = await registerUser(app);
    const endpoint = freshEndpoint();
    await register(carol.accessToken, endpoint);
    const holder = await ownerOf(endpoint);
    await app.services.prisma.session.update({ where: { id: holder!.sessionId }, data: { expiresAt: new Date(Date.now() - 1_000) } });
    expect((await register(mallory.accessToken, endpoint)).data?.registerPushSubscription.endpoint).toBe(endpoint);
    expect((await ownerOf(endpoint))?.userId).toBe(mallory.id);
  });

  it('of two accounts registering a new endpoint at once, one gets it and the other CONFLICT', async () => {
    const endpoint = freshEndpoint();
    const results = await Promise.all([register(alice.accessToken, endpoint), register(mallory.accessToken, endpoint)]);
    expect(results.map((r) => (r.data?.registerPushSubscription ? 'ok' : codeOf(r))).sort()).toEqual(['CONFLICT', 'ok']);
  });
});
