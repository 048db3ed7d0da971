// Device keys, pre-key bundles and the sessions a user can see and end.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSession } from '../src/auth/sessions.ts';
import { DEVICES_PER_USER_MAX } from '../src/devices/devices.ts';
import type { App } from '../src/server/app.ts';
import { generateDeviceKeys, uploadInput } from './support/e2e-client.ts';
import { addDevice, DEVICE_FIELDS, DEVICE_KEY_EVENTS, fetchBundles, PRE_KEY_BUNDLES, signInAgain, UPLOAD_DEVICE_KEYS } from './support/devices.ts';
import { codeOf, createChat, gql, onlyRateLimits, registerUser, startTestApp } from './support/helpers.ts';
import { BLOCK_USER, LOGOUT } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

let app: App;
let url: string;
const sockets = openConnections();

beforeAll(async () => {
  app = await startTestApp(onlyRateLimits({ RATE_LIMIT_PRE_KEY_BUNDLES: '5/1h' }), { channelPrefix: `kocmoc-test:${randomUUID()}:` });
  url = (await app.start()).url;
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const upload = (token: string, input: unknown) => gql(app, UPLOAD_DEVICE_KEYS, { input }, { token });
const b64 = (bytes: number, fill = 1) => Buffer.alloc(bytes, fill).toString('base64');

describe('uploadDeviceKeys', () => {
  it('makes the session a device that others see, with its count of one-time pre-keys visible to its owner only', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = await addDevice(app, alice, alice.accessToken, 12);
    const mine = await gql(app, `{ myDevice { ${DEVICE_FIELDS} } sessions { id current device { id } } }`, {}, { token: alice.accessToken });
    expect(mine.data.myDevice).toMatchObject({ id: device.id, identityKey: Buffer.from(device.keys.identity.publicKey).toString('base64'), oneTimePreKeyCount: 12, user: { id: alice.id } });
    expect(mine.data.sessions).toEqual([{ id: device.id, current: true, device: { id: device.id } }]);
    const seen = await gql(app, `query ($id: ID!) { user(id: $id) { devices { id oneTimePreKeyCount lastSeenAt } } }`, { id: alice.id }, { token: bob.accessToken });
    expect(seen.data.user.devices).toEqual([{ id: device.id, oneTimePreKeyCount: null, lastSeenAt: expect.any(String) }]);
    expect((await gql(app, `{ myDevice { id } }`, {}, { token: bob.accessToken })).data.myDevice).toBeNull();
  });

  it('refuses a signature that does not verify', async () => {
    const user = await registerUser(app);
    const input = uploadInput(generateDeviceKeys());
    const other = uploadInput(generateDeviceKeys());
    const result = await upload(user.accessToken, { ...input, signedPreKey: { ...input.signedPreKey, signature: other.signedPreKey.signature } });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe('input.signedPreKey.signature');
    expect(await app.services.prisma.device.count({ where: { userId: user.id } })).toBe(0);
  });

  it.each([
    ['a 31-byte identity key', (input: any) => ({ ...input, identityKey: b64(31) }), 'input.identityKey'],
    ['a 33-byte signed pre-key', (input: any) => ({ ...input, signedPreKey: { ...input.signedPreKey, publicKey: b64(33) } }), 'input.signedPreKey.publicKey'],
    ['a short signature', (input: any) => ({ ...input, signedPreKey: { ...input.signedPreKey, signature: b64(63) } }), 'input.signedPreKey.signature'],
    ['a one-time pre-key of 16 bytes', (input: any) => ({ ...input, oneTimePreKeys: [{ keyId: 1, publicKey: b64(16) }] }), 'input.oneTimePreKeys.0.publicKey'],
    ['base64url instead of base64', (input: any) => ({ ...input, identityKey: Buffer.alloc(32, 0xfb).toString('base64url') }), 'input.identityKey'],
    ['not base64 at all', (input: any) => ({ ...input, identityKey: 'not base64!' }), 'input.identityKey'],
    ['a negative keyId', (input: any) => ({ ...input, oneTimePreKeys: [{ keyId: -1, publicKey: b64(32) }] }), 'input.oneTimePreKeys.0.keyId'],
  ])('refuses %s with BAD_USER_INPUT', async (_case, change, field) => {
    const user = await registerUser(app);
    const result = await upload(user.accessToken, change(uploadInput(generateDeviceKeys())));
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors![0]!.extensions!.field).toBe(field);
  });

  it('refuses a second identity key for the same session, and duplicate key ids, with CONFLICT', async () => {
    const user = await registerUser(app);
    const device = await addDevice(app, user, user.accessToken, 3);
    const second = await upload(user.accessToken, uploadInput(generateDeviceKeys(), 1));
    expect(codeOf(second)).toBe('CONFLICT');
    expect(second.errors![0]!.extensions!.field).toBe('input.identityKey');

    const again = uploadInput(device.keys);
    const stored = await upload(user.accessToken, { ...again, oneTimePreKeys: [{ keyId: 2, publicKey: b64(32, 9) }] });
    expect(codeOf(stored)).toBe('CONFLICT');
    expect(stored.errors![0]!.extensions).toMatchObject({ field: 'input.oneTimePreKeys', duplicateKeyIds: [2] });
    const repeated = await upload(user.accessToken, { ...again, oneTimePreKeys: [{ keyId: 50, publicKey: b64(32, 9) }, { keyId: 50, publicKey: b64(32, 8) }] });
    expect(codeOf(repeated)).toBe('CONFLICT');
    expect((await gql(app, `{ myDevice { identityKey oneTimePreKeyCount } }`, {}, { token: user.accessToken })).data.myDevice).toEqual({
      identityKey: Buffer.from(device.keys.identity.publicKey).toString('base64'),
      oneTimePreKeyCount: 3,
    });
  });

  it(`allows a user at most ${DEVICES_PER_USER_MAX} devices with keys`, async () => {
    const user = await registerUser(app);
    const account = await app.services.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    // Sessions opened directly (no password hash each); each uploads keys.
    const tokens = await Promise.all(Array.from({ length: DEVICES_PER_USER_MAX + 1 }, async () => (await openSession(app.services, account, { userAgent: null })).accessToken));
    for (const token of tokens.slice(0, DEVICES_PER_USER_MAX)) await addDevice(app, user, token, 0);
    const refused = await upload(tokens.at(-1)!, uploadInput(generateDeviceKeys()));
    expect(codeOf(refused)).toBe('CONFLICT');
    expect(refused.errors![0]!.message).toMatch(/revokeSession/);
  });

  it('rotates the signed pre-key and adds one-time pre-keys, up to 200 stored', async () => {
    const [user, peer] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = await addDevice(app, user, user.accessToken, 150);
    const rotated = generateDeviceKeys();
    device.keys.signedPreKey = { ...rotated.signedPreKey, keyId: 2 };
    // The new signed pre-key must be signed by this device's identity key: sign it again.
    const { ed25519 } = await import('@noble/curves/ed25519.js');
    device.keys.signedPreKey.signature = ed25519.sign(device.keys.signedPreKey.publicKey, device.keys.identity.secretKey);
    const tooMany = await upload(user.accessToken, uploadInput(device.keys, 51));
    expect(codeOf(tooMany)).toBe('BAD_USER_INPUT');
    expect(tooMany.errors![0]!.extensions!.field).toBe('input.oneTimePreKeys');
    const fine = await upload(user.accessToken, uploadInput(device.keys, 50));
    expect(fine.data.uploadDeviceKeys.oneTimePreKeyCount).toBe(200);
    const [bundle] = await fetchBundles(app, peer.accessToken, user.id);
    expect(bundle!.signedPreKey).toEqual({
      keyId: 2,
      publicKey: Buffer.from(device.keys.signedPreKey.publicKey).toString('base64'),
      signature: Buffer.from(device.keys.signedPreKey.signature).toString('base64'),
    });
  });
});

describe('preKeyBundles', () => {
  it('claims one one-time pre-key per device, never the same twice, and null once none are left', async () => {
    const [bob, alice] = await Promise.all([registerUser(app), registerUser(app)]);
    const phone = await addDevice(app, bob, bob.accessToken, 2);
    const laptop = await addDevice(app, bob, await signInAgain(app, bob), 0);
    const first = await fetchBundles(app, alice.accessToken, bob.id);
    expect(first.map((b) => b.device.id)).toEqual([phone.id, laptop.id]);
    expect(first[0]!.oneTimePreKey!.keyId).toBe(1);
    expect(first[1]!.oneTimePreKey).toBeNull();
    expect(first[0]!.identityKey).toBe(Buffer.from(phone.keys.identity.publicKey).toString('base64'));
    const second = await fetchBundles(app, alice.accessToken, bob.id, [phone.id]);
    expect(second.map((b) => b.oneTimePreKey?.keyId)).toEqual([2]);
    expect((await fetchBundles(app, alice.accessToken, bob.id, [phone.id]))[0]!.oneTimePreKey).toBeNull();
    expect(await app.services.prisma.oneTimePreKey.count({ where: { deviceId: phone.id } })).toBe(0);
    // Bob's own phone sees his laptop, never itself.
    expect((await fetchBundles(app, phone.token, bob.id)).map((b) => b.device.id)).toEqual([laptop.id]);
  });

  it('is FORBIDDEN between users who blocked one another unless they share a group, and NOT_FOUND for an unknown user', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await addDevice(app, bob);
    await gql(app, BLOCK_USER, { userId: alice.id }, { token: bob.accessToken });
    expect(codeOf(await gql(app, PRE_KEY_BUNDLES, { u: bob.id }, { token: alice.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, PRE_KEY_BUNDLES, { u: randomUUID() }, { token: alice.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, PRE_KEY_BUNDLES, { u: bob.id }))).toBe('UNAUTHENTICATED');
    // A group they share stays writable for both (README, Blocking), so its members' keys do too.
    await createChat(app, bob, { kind: 'GROUP', title: 'Still shared', memberIds: [alice.id] });
    expect(await fetchBundles(app, alice.accessToken, bob.id)).toHaveLength(1);
  });

  it('is RATE_LIMITED per (claimer, target) beyond RATE_LIMIT_PRE_KEY_BUNDLES, with retryAfterSeconds', async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    await addDevice(app, bob, bob.accessToken, 50);
    for (let i = 0; i < 5; i++) await fetchBundles(app, alice.accessToken, bob.id);
    const limited = await gql(app, PRE_KEY_BUNDLES, { u: bob.id }, { token: alice.accessToken });
    expect(codeOf(limited)).toBe('RATE_LIMITED');
    expect(limited.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThan(3000);
    // Another claimer, or another target, has a budget of its own; the refused call claimed nothing.
    expect(await fetchBundles(app, carol.accessToken, bob.id)).toHaveLength(1);
    expect(await app.services.prisma.oneTimePreKey.count({ where: { device: { userId: bob.id } } })).toBe(44);
  });

  it('tells the device when its one-time pre-keys fall below 10, with the count left', async () => {
    const [bob, alice] = await Promise.all([registerUser(app), registerUser(app)]);
    const phone = await addDevice(app, bob, bob.accessToken, 11);
    const other = await addDevice(app, bob, await signInAgain(app, bob), 30);
    const events = subscribe(sockets.connect(url, phone.token), DEVICE_KEY_EVENTS);
    const othersEvents = subscribe(sockets.connect(url, other.token), DEVICE_KEY_EVENTS);
    await settle();
    await fetchBundles(app, alice.accessToken, bob.id); // 10 left: not yet
    expect(await events.nothingWithin(200)).toBe(true);
    await fetchBundles(app, alice.accessToken, bob.id); // 9 left
    expect((await events.next()).data).toEqual({ deviceKeyEvents: { type: 'ONE_TIME_PRE_KEYS_LOW', user: { id: bob.id }, remaining: 9 } });
    expect(await othersEvents.nothingWithin(200)).toBe(true);
  });
});

describe('sessions', () => {
  it('lists every signed-in session, with or without keys, and marks the current one', async () => {
    const user = await registerUser(app);
    const second = await signInAgain(app, user);
    const device = await addDevice(app, user, second);
    const listed = await gql(app, `{ sessions { id current userAgent createdAt lastSeenAt device { id } } me { sessions { id } } }`, {}, { token: user.accessToken });
    expect(listed.data.sessions).toHaveLength(2);
    const [keyed, plain] = [listed.data.sessions.find((s: any) => s.device), listed.data.sessions.find((s: any) => !s.device)];
    expect(keyed).toMatchObject({ id: device.id, current: false, userAgent: 'second device' });
    expect(plain).toMatchObject({ current: true, device: null });
    expect(listed.data.me.sessions.map((s: any) => s.id).sort()).toEqual(listed.data.sessions.map((s: any) => s.id).sort());
    const stranger = await registerUser(app);
    const theirs = await gql(app, `query ($id: ID!) { user(id: $id) { sessions { id } } }`, { id: user.id }, { token: stranger.accessToken });
    expect(theirs.data.user.sessions).toEqual([]);
  });

  it('revokeSession ends a session at once: tokens, sockets (4401), push subscriptions, device and keys; partners get DEVICES_CHANGED', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const laptopToken = await signInAgain(app, alice);
    const laptop = await addDevice(app, alice, laptopToken, 5);
    const endpoint = `https://push.example.com/${randomUUID()}`;
    // Registered as registerPushSubscription would (its endpoint check wants a public host).
    await app.services.prisma.pushSubscription.create({ data: { userId: alice.id, sessionId: laptop.id, endpoint, p256dh: 'p', auth: 'a' } });
    expect(await app.services.prisma.pushSubscription.count({ where: { endpoint } })).toBe(1);
    const laptopSocket = sockets.connect(url, laptopToken);
    await laptopSocket.connected;
    const bobEvents = subscribe(sockets.connect(url, bob.accessToken), DEVICE_KEY_EVENTS);
    await settle();

    const revoked = await gql(app, `mutation ($id: ID!) { revokeSession(id: $id) }`, { id: laptop.id }, { token: alice.accessToken });
    expect(revoked.data.revokeSession).toBe(true);
    expect(await laptopSocket.closed).toBe(4401);
    expect(codeOf(await gql(app, `{ me { id } }`, {}, { token: laptopToken }))).toBe('UNAUTHENTICATED');
    expect((await bobEvents.next()).data).toEqual({ deviceKeyEvents: { type: 'DEVICES_CHANGED', user: { id: alice.id }, remaining: null } });
    const { prisma } = app.services;
    expect(await prisma.device.count({ where: { id: laptop.id } })).toBe(0);
    expect(await prisma.oneTimePreKey.count({ where: { deviceId: laptop.id } })).toBe(0);
    expect(await prisma.pushSubscription.count({ where: { endpoint } })).toBe(0);
    expect(await fetchBundles(app, bob.accessToken, alice.id)).toEqual([]);
    expect((await gql(app, `mutation ($id: ID!) { revokeSession(id: $id) }`, { id: laptop.id }, { token: alice.accessToken })).data.revokeSession).toBe(false);
    expect(codeOf(await gql(app, `mutation ($id: ID!) { revokeSession(id: $id) }`, { id: laptop.id }, { token: bob.accessToken }))).toBe('NOT_FOUND');
  });

  it('moves lastSeenAt when a session that was idle for over a minute is used again', async () => {
    const user = await registerUser(app);
    const { prisma, sessions } = app.services;
    const [session] = await prisma.session.findMany({ where: { userId: user.id } });
    const idleSince = new Date(Date.now() - 5 * 60_000);
    await prisma.session.update({ where: { id: session!.id }, data: { lastSeenAt: idleSince } });
    sessions.forget([session!.id]); // as if this instance's 10 s cache entry had run out
    const listed = await gql(app, `{ sessions { lastSeenAt } }`, {}, { token: user.accessToken });
    expect(new Date(listed.data.sessions[0].lastSeenAt).getTime()).toBeGreaterThan(idleSince.getTime() + 60_000);
  });

  it('revokeOtherSessions ends all but the current session', async () => {
    const user = await registerUser(app);
    const others = await Promise.all([signInAgain(app, user), signInAgain(app, user)]);
    await addDevice(app, user, others[0]);
    expect((await gql(app, `mutation { revokeOtherSessions }`, {}, { token: user.accessToken })).data.revokeOtherSessions).toBe(2);
    for (const token of others) expect(codeOf(await gql(app, `{ me { id } }`, {}, { token }))).toBe('UNAUTHENTICATED');
    expect((await gql(app, `{ sessions { current } }`, {}, { token: user.accessToken })).data.sessions).toEqual([{ current: true }]);
    expect(await app.services.prisma.device.count({ where: { userId: user.id } })).toBe(0);
  });

  it('logging out removes the device; chat partners and the user’s other devices get DEVICES_CHANGED', async () => {
    const [alice, bob, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    await createChat(app, bob, { kind: 'GROUP', title: 'Keys', memberIds: [alice.id] });
    const phone = await addDevice(app, alice);
    const laptop = await addDevice(app, alice, await signInAgain(app, alice));
    const bobEvents = subscribe(sockets.connect(url, bob.accessToken), DEVICE_KEY_EVENTS);
    const laptopEvents = subscribe(sockets.connect(url, laptop.token), DEVICE_KEY_EVENTS);
    const strangerEvents = subscribe(sockets.connect(url, stranger.accessToken), DEVICE_KEY_EVENTS);
    await settle();
    await gql(app, LOGOUT, {}, { token: phone.token });
    const changed = { deviceKeyEvents: { type: 'DEVICES_CHANGED', user: { id: alice.id }, remaining: null } };
    expect((await bobEvents.next()).data).toEqual(changed);
    expect((await laptopEvents.next()).data).toEqual(changed);
    expect(await strangerEvents.nothingWithin(200)).toBe(true);
    const devices = await gql(app, `query ($id: ID!) { user(id: $id) { devices { id } } }`, { id: alice.id }, { token: bob.accessToken });
    expect(devices.data.user.devices).toEqual([{ id: laptop.id }]);
  });

  it('deleting the account removes every device with its keys; chat partners get DEVICES_CHANGED', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    await createChat(app, bob, { kind: 'GROUP', title: 'Keys', memberIds: [alice.id] });
    const phone = await addDevice(app, alice, alice.accessToken, 5);
    await addDevice(app, alice, await signInAgain(app, alice), 5);
    const bobEvents = subscribe(sockets.connect(url, bob.accessToken), DEVICE_KEY_EVENTS);
    await settle();
    const deleted = await gql(app, `mutation ($p: String!) { deleteAccount(password: $p) }`, { p: alice.password }, { token: phone.token });
    expect(deleted.errors).toBeUndefined();
    expect((await bobEvents.next()).data).toEqual({ deviceKeyEvents: { type: 'DEVICES_CHANGED', user: { id: alice.id }, remaining: null } });
    const { prisma } = app.services;
    expect(await prisma.device.count({ where: { userId: alice.id } })).toBe(0);
    expect(await prisma.oneTimePreKey.count({ where: { device: { userId: alice.id } } })).toBe(0);
    expect(await prisma.oneTimePreKey.count({ where: { deviceId: phone.id } })).toBe(0);
  });
});
