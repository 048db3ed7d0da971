// One-time pre-keys are handed out at most once, ever: concurrent claims on two server instances
// sharing one PostgreSQL (and one Redis, which also shares the per-pair claim limit).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { addDevice, PRE_KEY_BUNDLES } from './support/devices.ts';
import { codeOf, gql, onlyRateLimits, registerUser, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';

let a: App;
let b: App;

beforeAll(async () => {
  const prefix = `kocmoc-test:${randomUUID()}:`;
  const start = () => startTestApp({ REDIS_URL: testRedisUrl(), ...onlyRateLimits({ RATE_LIMIT_PRE_KEY_BUNDLES: '3/1h' }) }, { channelPrefix: prefix, rateLimitKeyPrefix: prefix, presence: { keyPrefix: prefix } });
  [a, b] = await Promise.all([start(), start()]);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

/** `count` users, registered a few at a time (each costs a password hash), alternately through each instance. */
async function registerMany(count: number): Promise<TestUser[]> {
  const users: TestUser[] = [];
  for (let i = 0; i < count; i += 5) {
    users.push(...(await Promise.all(Array.from({ length: Math.min(5, count - i) }, (_, j) => registerUser((i + j) % 2 ? a : b)))));
  }
  return users;
}

describe('claiming one-time pre-keys', () => {
  it('gives 20 keys to 20 of 50 concurrent callers split across two instances, each key once, and null to the other 30', async () => {
    const bob = await registerUser(a);
    const device = await addDevice(a, bob, bob.accessToken, 20);
    const published = new Map([...device.keys.oneTimePreKeys].map(([keyId, pair]) => [keyId, Buffer.from(pair.publicKey).toString('base64')]));
    const claimers = await registerMany(50);

    const results = await Promise.all(claimers.map((claimer, i) => gql(i % 2 ? a : b, PRE_KEY_BUNDLES, { u: bob.id }, { token: claimer.accessToken })));
    expect(results.flatMap((result) => result.errors ?? [])).toEqual([]);
    const keys = results.map((result) => result.data.preKeyBundles[0].oneTimePreKey as { keyId: number; publicKey: string } | null);
    const handedOut = keys.filter((key) => key !== null);
    expect(handedOut).toHaveLength(20);
    expect(keys.filter((key) => key === null)).toHaveLength(30);
    expect(new Set(handedOut.map((key) => key.keyId)).size).toBe(20);
    for (const key of handedOut) expect(key.publicKey).toBe(published.get(key.keyId));
    expect(await a.services.prisma.oneTimePreKey.count({ where: { deviceId: device.id } })).toBe(0);
  });

  it('counts the per-(claimer, target) limit across instances', async () => {
    const [alice, bob] = await Promise.all([registerUser(a), registerUser(b)]);
    await addDevice(b, bob, bob.accessToken, 10);
    for (const app of [a, b, a]) expect((await gql(app, PRE_KEY_BUNDLES, { u: bob.id }, { token: alice.accessToken })).errors).toBeUndefined();
    const limited = await gql(b, PRE_KEY_BUNDLES, { u: bob.id }, { token: alice.accessToken });
    expect(codeOf(limited)).toBe('RATE_LIMITED');
    expect(limited.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThan(0);
  });
});
