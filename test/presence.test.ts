import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import type { PrismaClient } from '../src/generated/prisma/client.ts';
import { createPresenceReader } from '../src/realtime/presence/reader.ts';
import { createPresenceTracker, type PresenceChange, type PresenceTracker, type PresenceTrackerOptions } from '../src/realtime/presence/tracker.ts';
import { startTestApp, testRedisUrl, uniqueName } from './support/helpers.ts';

const REDIS_URL = testRedisUrl();
// Small timings keep the file fast; the timeout leaves room for a few missed heartbeats.
const GRACE_MS = 150;
const HEARTBEAT_MS = 50;
const TIMEOUT_MS = 300;

let app: App;
let prisma: PrismaClient;
/** Inspects and cleans Redis; trackers get their own clients. */
let admin: Redis;
const trackers: PresenceTracker[] = [];
const clients: Redis[] = [];
const prefixes: string[] = [];
/** Every SQL statement the app's Prisma client (the trackers' too) ran; tests reset it. */
const queries: string[] = [];

beforeAll(async () => {
  app = await startTestApp({}, { onQuery: (sql) => queries.push(sql) });
  prisma = app.services.prisma;
  admin = new Redis(REDIS_URL);
});

afterEach(async () => {
  await Promise.all(trackers.splice(0).map((tracker) => tracker.stop()));
  clients.splice(0).forEach((client) => client.disconnect());
  for (const prefix of prefixes.splice(0)) {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
});

afterAll(async () => {
  admin?.disconnect();
  await app?.stop();
});

async function createUser() {
  const username = uniqueName('presence');
  const user = await prisma.user.create({
    data: { email: `${username}@example.com`, username, passwordHash: 'unused', displayName: username },
  });
  return user.id;
}

/** Many users at once (one INSERT), for the batching tests. */
async function createUsers(count: number) {
  const usernames = Array.from({ length: count }, () => uniqueName('presence'));
  const users = await prisma.user.createManyAndReturn({
    data: usernames.map((username) => ({ email: `${username}@example.com`, username, passwordHash: 'unused', displayName: username })),
    select: { id: true },
  });
  return users.map((user) => user.id);
}

/** UPDATE statements that wrote lastSeenAt since `queries` was last reset. */
const lastSeenWrites = () => queries.filter((sql) => /^\s*UPDATE\b/i.test(sql) && sql.includes('"lastSeenAt"')).length;

/** Checks that every one of these users has, in the database, the lastSeenAt their OFFLINE reported. */
async function expectLastSeenSaved(userIds: string[], changes: PresenceChange[]) {
  const reported = new Map(changes.filter((change) => !change.online).map((change) => [change.userId, change.lastSeenAt]));
  const rows = await prisma.user.findMany({ where: { id: { in: userIds } }, select: { id: true, lastSeenAt: true } });
  expect(rows).toHaveLength(userIds.length);
  for (const row of rows) expect(row.lastSeenAt, row.id).toEqual(reported.get(row.id));
}

function redisClient() {
  const client = new Redis(REDIS_URL);
  // The crash test cuts connections on purpose; failures surface as rejected commands.
  client.on('error', () => {});
  clients.push(client);
  return client;
}

/** A tracker whose reported changes are collected in `changes`. */
function tracker(overrides: Partial<PresenceTrackerOptions> = {}) {
  const changes: PresenceChange[] = [];
  const presence = createPresenceTracker({
    prisma,
    onChange: (change) => changes.push(change),
    offlineGraceMs: GRACE_MS,
    heartbeatMs: HEARTBEAT_MS,
    instanceTimeoutMs: TIMEOUT_MS,
    ...overrides,
  });
  trackers.push(presence);
  return { presence, changes };
}

/** A fresh key prefix, so tests never see each other's Redis state. */
function keyPrefix() {
  const prefix = `kocmoc-test:${randomUUID()}:`;
  prefixes.push(prefix);
  return prefix;
}

/** Two instances sharing one Redis (each with its own client) and one change log. */
async function cluster(options: Partial<PresenceTrackerOptions> = {}) {
  const prefix = keyPrefix();
  // Which instance reported each change, to check that one decided it.
  const changes: Array<PresenceChange & { instanceId: string }> = [];
  const make = (instanceId: string) => {
    const redis = redisClient();
    const { presence } = tracker({ redis, keyPrefix: prefix, instanceId, onChange: (change) => changes.push({ ...change, instanceId }), ...options });
    return { presence, redis };
  };
  const a = make('a');
  const b = make('b');
  await Promise.all([a.presence.start(), b.presence.start()]);
  return { a, b, changes, prefix };
}

const online = (userId: string) => ({ userId, online: true, lastSeenAt: null });
const kinds = (changes: PresenceChange[]) => changes.map((change) => (change.online ? 'ONLINE' : 'OFFLINE'));

async function lastSeenAtInDb(userId: string) {
  return (await prisma.user.findUniqueOrThrow({ where: { id: userId } })).lastSeenAt;
}

describe('in-process presence', () => {
  it('reports ONLINE on the first connection and OFFLINE after the grace following the last', async () => {
    const [userId, other] = [await createUser(), await createUser()];
    const { presence, changes } = tracker();
    await presence.start();

    expect(await presence.connect(userId)).toEqual({ accepted: true, connections: 1 });
    expect(changes).toEqual([online(userId)]);
    expect(await presence.onlineUserIds([userId, other])).toEqual(new Set([userId]));

    expect(await presence.connect(userId)).toEqual({ accepted: true, connections: 2 });
    await presence.disconnect(userId);
    expect(changes).toHaveLength(1);
    expect(await presence.onlineUserIds([userId])).toEqual(new Set([userId]));

    const closedAt = Date.now();
    await presence.disconnect(userId);
    // Within the grace the user still counts as online: no event has said otherwise.
    expect(changes).toHaveLength(1);
    expect(await presence.onlineUserIds([userId])).toEqual(new Set([userId]));

    await vi.waitFor(() => expect(changes).toHaveLength(2), { timeout: 2_000, interval: 10 });
    const offline = changes[1]!;
    expect(offline).toMatchObject({ userId, online: false });
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(GRACE_MS - 5);
    // lastSeenAt is when the last connection closed, not when the grace ran out.
    expect(offline.lastSeenAt!.getTime()).toBeGreaterThanOrEqual(closedAt - 5);
    expect(offline.lastSeenAt!.getTime()).toBeLessThan(closedAt + GRACE_MS);
    expect(await presence.onlineUserIds([userId, other])).toEqual(new Set());
    await vi.waitFor(async () => expect(await lastSeenAtInDb(userId)).toEqual(offline.lastSeenAt), { timeout: 2_000, interval: 20 });

    await sleep(GRACE_MS * 2);
    expect(changes).toHaveLength(2);
  });

  it('ignores connections that flap within the grace', async () => {
    const userId = await createUser();
    const { presence, changes } = tracker();
    await presence.start();

    await presence.connect(userId);
    for (let i = 0; i < 5; i++) {
      await presence.disconnect(userId);
      await sleep(GRACE_MS / 3);
      await presence.connect(userId);
    }
    await sleep(GRACE_MS * 2);
    expect(changes).toEqual([online(userId)]);
    expect(await lastSeenAtInDb(userId)).toBeNull();

    await presence.disconnect(userId);
    await vi.waitFor(() => expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']), { timeout: 2_000, interval: 10 });
  });

  it('ignores extra disconnects and refuses connections over the limit', async () => {
    const userId = await createUser();
    const { presence, changes } = tracker({ maxConnectionsPerUser: 2 });
    await presence.start();

    await presence.disconnect(userId);
    expect(await presence.connect(userId)).toEqual({ accepted: true, connections: 1 });
    expect(await presence.connect(userId)).toEqual({ accepted: true, connections: 2 });
    expect(await presence.connect(userId)).toEqual({ accepted: false, connections: 2 });
    await presence.disconnect(userId);
    expect(await presence.connect(userId)).toEqual({ accepted: true, connections: 2 });
    expect(changes).toEqual([online(userId)]);
  });

  it('reports connected users offline when stopped, since no other instance will', async () => {
    const userId = await createUser();
    const { presence, changes } = tracker();
    await presence.start();
    await presence.connect(userId);
    await presence.stop();
    expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']);
    // stop() waits for the lastSeenAt write.
    expect(await lastSeenAtInDb(userId)).toEqual(changes[1]!.lastSeenAt);
    await expect(presence.connect(userId)).rejects.toThrow(/stopped/);
  });

  it('writes lastSeenAt of many users at stop in one statement per 1,000 users, never moving it backwards', async () => {
    const userIds = await createUsers(2_500);
    // A later lastSeenAt already saved (say, by a newer report) must stay.
    const [ahead, ...rest] = userIds as [string, ...string[]];
    const later = new Date(Date.now() + 60_000);
    await prisma.user.update({ where: { id: ahead }, data: { lastSeenAt: later } });
    const { presence, changes } = tracker();
    await presence.start();
    await Promise.all(userIds.map((userId) => presence.connect(userId)));

    queries.length = 0;
    await presence.stop();
    expect(changes.filter((change) => !change.online).map((change) => change.userId).sort()).toEqual([...userIds].sort());
    // stop() waited for every write: they are all there now.
    await expectLastSeenSaved(rest, changes);
    expect(await lastSeenAtInDb(ahead)).toEqual(later);
    expect(lastSeenWrites()).toBe(3);
  });

  it('coalesces the lastSeenAt writes of users whose grace ends together', async () => {
    const userIds = await createUsers(300);
    const { presence, changes } = tracker();
    await presence.start();
    await Promise.all(userIds.map((userId) => presence.connect(userId)));

    queries.length = 0;
    await Promise.all(userIds.map((userId) => presence.disconnect(userId)));
    await vi.waitFor(() => expect(changes.filter((change) => !change.online)).toHaveLength(userIds.length), { timeout: 2_000, interval: 10 });
    await vi.waitFor(() => expectLastSeenSaved(userIds, changes), { timeout: 2_000, interval: 20 });
    // Grace timers end a few at a time, so allow a few statements; one per user would be 300.
    expect(lastSeenWrites()).toBeLessThanOrEqual(5);
  });
});

describe('presence across instances (Redis)', () => {
  it('counts connections on every instance and reports each transition once', async () => {
    const [userId, other] = [await createUser(), await createUser()];
    const { a, b, changes } = await cluster();

    expect(await a.presence.connect(userId)).toEqual({ accepted: true, connections: 1 });
    expect(await b.presence.connect(userId)).toEqual({ accepted: true, connections: 2 });
    expect(changes).toEqual([{ ...online(userId), instanceId: 'a' }]);
    expect(await b.presence.onlineUserIds([userId, other])).toEqual(new Set([userId]));

    await a.presence.disconnect(userId);
    await sleep(GRACE_MS * 2);
    expect(changes).toHaveLength(1);
    expect(await a.presence.onlineUserIds([userId])).toEqual(new Set([userId]));

    await b.presence.disconnect(userId);
    await vi.waitFor(() => expect(changes).toHaveLength(2), { timeout: 2_000, interval: 10 });
    expect(changes[1]).toMatchObject({ userId, online: false });
    expect(await a.presence.onlineUserIds([userId])).toEqual(new Set());
    await vi.waitFor(async () => expect(await lastSeenAtInDb(userId)).toEqual(changes[1]!.lastSeenAt), { timeout: 2_000, interval: 20 });

    // Both instances' timers and sweepers have had their chance to report it again.
    await sleep(GRACE_MS + HEARTBEAT_MS * 4);
    expect(changes).toHaveLength(2);
  });

  it('gives a reader (the push worker\'s) the answer the trackers give, ONLINE through the grace', async () => {
    const [userId, other] = [await createUser(), await createUser()];
    // A grace long enough to look inside it on a loaded machine.
    const { a, changes, prefix } = await cluster({ offlineGraceMs: 600 });
    const reader = createPresenceReader({ redis: redisClient(), keyPrefix: prefix });
    const both = async (userIds: string[]) => [await reader.onlineUserIds(userIds), await a.presence.onlineUserIds(userIds)];

    expect(await both([])).toEqual([new Set(), new Set()]);
    await a.presence.connect(userId);
    expect(await both([userId, other, userId])).toEqual([new Set([userId]), new Set([userId])]);

    await a.presence.disconnect(userId);
    expect(kinds(changes)).toEqual(['ONLINE']);
    expect(await both([userId, other])).toEqual([new Set([userId]), new Set([userId])]);

    await vi.waitFor(() => expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']), { timeout: 3_000, interval: 10 });
    expect(await both([userId, other])).toEqual([new Set(), new Set()]);
  });

  it('reports no change when a user moves to another instance within the grace', async () => {
    const userId = await createUser();
    const { a, b, changes } = await cluster();

    await a.presence.connect(userId);
    await a.presence.disconnect(userId);
    await sleep(GRACE_MS / 3);
    await b.presence.connect(userId);
    await sleep(GRACE_MS * 2);
    expect(kinds(changes)).toEqual(['ONLINE']);
    await b.presence.disconnect(userId);
    await vi.waitFor(() => expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']), { timeout: 2_000, interval: 10 });
  });

  it('ends the grace of a stopped instance on another one', async () => {
    const userId = await createUser();
    const { a, changes } = await cluster();

    await a.presence.connect(userId);
    await a.presence.stop();
    // a's own timers are gone; b's sweeper reports the user once the grace is over.
    await vi.waitFor(() => expect(changes.map((change) => [change.online, change.instanceId])).toEqual([[true, 'a'], [false, 'b']]), {
      timeout: 2_000,
      interval: 10,
    });
  });

  it('writes lastSeenAt of the users a stopped instance held in few statements, once their grace ends', async () => {
    const userIds = await createUsers(300);
    const { a, changes } = await cluster();
    await Promise.all(userIds.map((userId) => a.presence.connect(userId)));

    queries.length = 0;
    await a.presence.stop();
    // All of a's users entered their grace at once, so one of b's ticks reports them together.
    await vi.waitFor(() => expect(changes.filter((change) => !change.online && change.instanceId === 'b')).toHaveLength(userIds.length), {
      timeout: 3_000,
      interval: 10,
    });
    await vi.waitFor(() => expectLastSeenSaved(userIds, changes), { timeout: 2_000, interval: 20 });
    expect(lastSeenWrites()).toBeLessThanOrEqual(2);
  });

  it('reports all users of a stopped instance in one heartbeat, however many batches that takes', async () => {
    const HEARTBEAT = 1_000;
    const userIds = await createUsers(1_200);
    const { a, b, changes } = await cluster({ heartbeatMs: HEARTBEAT, instanceTimeoutMs: 3 * HEARTBEAT });
    await Promise.all(userIds.map((userId) => a.presence.connect(userId)));

    const stoppedAt = Date.now();
    await a.presence.stop();
    // 1,200 users are three of the script's batches of 500: all in b's first tick after the grace.
    await vi.waitFor(() => expect(changes.filter((change) => !change.online && change.instanceId === 'b')).toHaveLength(userIds.length), {
      timeout: 5_000,
      interval: 20,
    });
    expect(Date.now() - stoppedAt).toBeLessThan(GRACE_MS + 2 * HEARTBEAT);
    await b.presence.stop();
  });

  it("drops a crashed instance's connections after its heartbeat times out, and takes them back if it returns", async () => {
    const userId = await createUser();
    const { a, b, changes, prefix } = await cluster();

    await a.presence.connect(userId);
    // Cut a off Redis: its heartbeats fail from now on, as if the process had died.
    const crashedAt = Date.now();
    a.redis.disconnect();

    await vi.waitFor(() => expect(changes).toHaveLength(2), { timeout: TIMEOUT_MS + GRACE_MS + 1_000, interval: 10 });
    // Generous slack for a loaded machine; without the sweeper it never comes.
    expect(Date.now() - crashedAt).toBeLessThan(TIMEOUT_MS + GRACE_MS + 500);
    expect(changes[1]).toMatchObject({ userId, online: false, instanceId: 'b' });
    // Last seen at a's last heartbeat, which was less than a timeout before the crash.
    expect(changes[1]!.lastSeenAt!.getTime()).toBeLessThanOrEqual(crashedAt + 5);
    expect(changes[1]!.lastSeenAt!.getTime()).toBeGreaterThan(crashedAt - TIMEOUT_MS);
    expect(await b.presence.onlineUserIds([userId])).toEqual(new Set());
    expect(await admin.exists(`${prefix}presence:user:${userId}`, `${prefix}presence:instance-users:a`)).toBe(0);
    expect(await admin.zscore(`${prefix}presence:instances`, 'a')).toBeNull();
    await vi.waitFor(async () => expect(await lastSeenAtInDb(userId)).toEqual(changes[1]!.lastSeenAt), { timeout: 2_000, interval: 20 });

    // It was only cut off: once back, it re-registers its live connection.
    await a.redis.connect();
    await vi.waitFor(() => expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE', 'ONLINE']), { timeout: 2_000, interval: 10 });
    expect(await admin.hgetall(`${prefix}presence:user:${userId}`)).toEqual({ a: '1' });
    expect(await b.presence.onlineUserIds([userId])).toEqual(new Set([userId]));
  });

  it('limits connections per user across instances', async () => {
    const userId = await createUser();
    const { a, b } = await cluster({ maxConnectionsPerUser: 3 });

    expect(await a.presence.connect(userId)).toEqual({ accepted: true, connections: 1 });
    expect(await a.presence.connect(userId)).toEqual({ accepted: true, connections: 2 });
    expect(await b.presence.connect(userId)).toEqual({ accepted: true, connections: 3 });
    expect(await a.presence.connect(userId)).toEqual({ accepted: false, connections: 3 });
    expect(await b.presence.connect(userId)).toEqual({ accepted: false, connections: 3 });

    await a.presence.disconnect(userId);
    expect(await b.presence.connect(userId)).toEqual({ accepted: true, connections: 3 });
    expect(await a.presence.connect(userId)).toEqual({ accepted: false, connections: 3 });
  });

  it('stays consistent under concurrent connects and disconnects on two instances', async () => {
    const userId = await createUser();
    const limit = 10;
    const { a, b, changes, prefix } = await cluster({ maxConnectionsPerUser: limit });
    const held = { a: 0, b: 0 };

    // 50 sessions per instance, all at once: connect, maybe disconnect soon after.
    const session = async (name: 'a' | 'b', presence: PresenceTracker) => {
      await sleep(Math.random() * 30);
      const { accepted } = await presence.connect(userId);
      if (!accepted) return;
      if (Math.random() < 0.7) {
        await sleep(Math.random() * 30);
        await presence.disconnect(userId);
      } else {
        held[name]++;
      }
    };
    await Promise.all([
      ...Array.from({ length: 50 }, () => session('a', a.presence)),
      ...Array.from({ length: 50 }, () => session('b', b.presence)),
    ]);

    const counts = await admin.hgetall(`${prefix}presence:user:${userId}`);
    expect(Number(counts.a ?? 0)).toBe(held.a);
    expect(Number(counts.b ?? 0)).toBe(held.b);
    expect(held.a + held.b).toBeLessThanOrEqual(limit);

    await Promise.all([
      ...Array.from({ length: held.a }, () => a.presence.disconnect(userId)),
      ...Array.from({ length: held.b }, () => b.presence.disconnect(userId)),
      // Disconnects of connections that were never counted change nothing.
      a.presence.disconnect(userId),
      b.presence.disconnect(userId),
    ]);
    expect(await admin.exists(`${prefix}presence:user:${userId}`)).toBe(0);

    await vi.waitFor(() => expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']), { timeout: 2_000, interval: 10 });
    await sleep(GRACE_MS + HEARTBEAT_MS * 4);
    expect(kinds(changes)).toEqual(['ONLINE', 'OFFLINE']);
    expect(await admin.sismember(`${prefix}presence:online`, userId)).toBe(0);
    expect(await admin.zcard(`${prefix}presence:pending-offline`)).toBe(0);
    expect(await admin.exists(`${prefix}presence:instance-users:a`, `${prefix}presence:instance-users:b`)).toBe(0);
  });
});
