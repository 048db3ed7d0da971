// Finding 4 of issue #14: with setStatus(OFFLINE), a partner subscribed to `presence` got an event
// the moment the user connected, and lastSeenAt moved a few seconds after each disconnect. Now
// nothing others can see changes while the chosen status is OFFLINE.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, startTestApp, type TestUser } from './support/helpers.ts';
import { PRESENCE, SET_STATUS } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const GRACE_MS = 200;
/** Long enough for a connection's event, or a disconnect's grace period and lastSeenAt write, to have happened. */
const QUIET_MS = GRACE_MS + 600;
const SEEN = `query ($id: ID!) { user(id: $id) { status lastSeenAt } }`;
const sockets = openConnections();
let app: App;
let url: string;
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  app = await startTestApp({}, { presence: { offlineGraceMs: GRACE_MS } });
  url = (await app.start()).url;
  [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const seenByBob = async () => (await gql(app, SEEN, { id: alice.id }, { token: bob.accessToken })).data.user as { status: string; lastSeenAt: string | null };
const lastSeenInDatabase = async () => (await app.services.prisma.user.findUniqueOrThrow({ where: { id: alice.id } })).lastSeenAt?.getTime() ?? null;

describe('appearing offline', () => {
  it('tells nobody when the user connects or disconnects, and keeps lastSeenAt where it was', async () => {
    const watcher = sockets.connect(url, bob.accessToken);
    await watcher.connected;
    const presence = subscribe(watcher, PRESENCE);
    await settle();

    await gql(app, SET_STATUS, { status: 'OFFLINE' }, { token: alice.accessToken });
    const frozen = await lastSeenInDatabase();
    expect(frozen).not.toBeNull();
    const before = await seenByBob();

    // The attack as described: connect, disconnect, and watch what the partner sees.
    for (let round = 0; round < 2; round++) {
      const device = sockets.connect(url, alice.accessToken);
      await device.connected;
      expect(await presence.nothingWithin(QUIET_MS)).toBe(true);
      expect(await seenByBob()).toEqual(before);
      await device.dispose();
      expect(await presence.nothingWithin(QUIET_MS)).toBe(true);
      expect(await lastSeenInDatabase()).toBe(frozen);
      expect(await seenByBob()).toEqual(before);
    }
    // Choosing OFFLINE again is no new "last seen" either.
    await gql(app, SET_STATUS, { status: 'OFFLINE' }, { token: alice.accessToken });
    expect(await lastSeenInDatabase()).toBe(frozen);
    expect(before.status).toBe('OFFLINE');

    // Choosing ONLINE while disconnected shows nothing yet; connecting then is seen, and so is leaving.
    await gql(app, SET_STATUS, { status: 'ONLINE' }, { token: alice.accessToken });
    expect(await presence.nothingWithin(300)).toBe(true);
    const device = sockets.connect(url, alice.accessToken);
    await device.connected;
    expect((await presence.next()).data?.presence).toMatchObject({ user: { id: alice.id }, status: 'ONLINE' });
    await device.dispose();
    const offline = (await presence.next()).data?.presence;
    expect(offline).toMatchObject({ user: { id: alice.id }, status: 'OFFLINE' });
    expect(new Date(offline.lastSeenAt).getTime()).toBeGreaterThan(frozen!);
    for (let i = 0; i < 50 && (await lastSeenInDatabase()) === frozen; i++) await settle(50);
    expect(await lastSeenInDatabase()).toBeGreaterThan(frozen!);
  });

  it('choosing OFFLINE while connected is seen once, as OFFLINE; nothing after that', async () => {
    const carol = await registerUser(app);
    await createChat(app, bob, { kind: 'DIRECT', memberIds: [carol.id] });
    const device = sockets.connect(url, carol.accessToken);
    await device.connected;
    const watcher = sockets.connect(url, bob.accessToken);
    await watcher.connected;
    const presence = subscribe(watcher, PRESENCE, { userIds: [carol.id] });
    await settle();
    await gql(app, SET_STATUS, { status: 'OFFLINE' }, { token: carol.accessToken });
    expect((await presence.next()).data?.presence).toMatchObject({ user: { id: carol.id }, status: 'OFFLINE' });
    await device.dispose();
    expect(await presence.nothingWithin(QUIET_MS)).toBe(true);
  });
});
