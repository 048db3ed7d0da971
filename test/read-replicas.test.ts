// DATABASE_REPLICA_URLS against a real streaming replica (pg_basebackup -R): history pages, search
// and profiles are read from the replica, except by a session that just wrote (for
// REPLICA_STICKY_SECONDS), which reads its own writes from the primary. Replay is paused on the
// replica to make its lag visible. With Redis, read-your-writes holds across instances: two
// instances sharing a Redis, the write on one, the next read on the other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, sendText, startTestApp, testConfig, testRedisUrl, type TestUser } from './support/helpers.ts';
import { postgresBinDir, startReplicatedPostgres, type ReplicatedPostgres } from './support/postgres-replica.ts';
import { freePortIn } from './support/processes.ts';

/** Long enough that a loaded machine gets from a write to the next read well within it. */
const STICKY_SECONDS = 2;

describe('DATABASE_REPLICA_URLS', () => {
  it('takes comma-separated PostgreSQL URLs and a sticky period', () => {
    const config = testConfig({ DATABASE_REPLICA_URLS: 'postgresql://r1/k, postgresql://r2/k', REPLICA_STICKY_SECONDS: '0.5' });
    expect(config.database.replicaUrls).toEqual(['postgresql://r1/k', 'postgresql://r2/k']);
    expect(config.database.replicaStickyMs).toBe(500);
    expect(testConfig().database).toMatchObject({ replicaUrls: [], replicaStickyMs: 2_000 });
    expect(() => testConfig({ DATABASE_REPLICA_URLS: 'mysql://x/y' })).toThrow(/not a postgresql:\/\/ URL/);
  });
});

const bin = postgresBinDir();
if (!bin && process.env.CI === 'true') throw new Error('pg_config is missing: the replica test needs PostgreSQL server binaries');
if (!bin) console.warn('pg_config not found: skipping the read-replica tests');

describe.skipIf(!bin)('with a streaming replica', () => {
  let servers: ReplicatedPostgres;
  /** Keeps the marks in memory (no Redis). */
  let app: App;
  /** Two instances sharing the test Redis. */
  let shared: App[] = [];

  beforeAll(async () => {
    const primaryPort = await freePortIn(17_150, 17_174);
    servers = await startReplicatedPostgres({ primaryPort, replicaPort: await freePortIn(17_175, 17_199) });
    app = await startTestApp({
      DATABASE_URL: servers.primaryUrl('kocmoc'),
      DATABASE_REPLICA_URLS: servers.replicaUrl('kocmoc'),
      REPLICA_STICKY_SECONDS: String(STICKY_SECONDS),
    });
    const env = { DATABASE_URL: servers.primaryUrl('kocmoc'), DATABASE_REPLICA_URLS: servers.replicaUrl('kocmoc'), REPLICA_STICKY_SECONDS: String(STICKY_SECONDS), REDIS_URL: testRedisUrl() };
    shared = await Promise.all([startTestApp(env), startTestApp(env)]);
    await servers.caughtUp();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([app, ...shared].map((instance) => instance?.stop()));
    await servers?.stop();
  });

  const profile = (viewer: TestUser, id: string, on = app) =>
    gql(on, 'query ($id: ID!) { user(id: $id) { displayName } }', { id }, { token: viewer.accessToken }).then((result) => result.data?.user?.displayName);
  const history = (viewer: TestUser, chatId: string, on = app) =>
    gql(on, 'query ($c: ID!) { chat(id: $c) { messages(last: 10) { edges { node { text } } } } }', { c: chatId }, { token: viewer.accessToken }).then(
      (result) => result.data?.chat?.messages.edges.map((edge: { node: { text: string } }) => edge.node.text),
    );
  const search = (viewer: TestUser, query: string) =>
    gql(app, 'query ($q: String!) { searchUsers(query: $q) { edges { node { id } } } }', { q: query }, { token: viewer.accessToken }).then(
      (result) => result.data?.searchUsers.edges.length,
    );

  it('reads history, search and profiles from the replica, and a writer its own writes from the primary', async () => {
    const [alice, bob] = [await registerUser(app, { displayName: 'Alice Before' }), await registerUser(app)];
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'replicated', memberIds: [bob.id] });
    await sendText(app, alice, chatId, 'first');
    await servers.caughtUp();
    await new Promise((resolve) => setTimeout(resolve, STICKY_SECONDS * 1000 + 100));
    await servers.pauseReplay();
    try {
      const renamed = await gql(app, 'mutation { updateProfile(input: { displayName: "Alice After" }) { displayName } }', {}, { token: alice.accessToken });
      expect(renamed.data.updateProfile.displayName).toBe('Alice After');
      await sendText(app, alice, chatId, 'second');

      // Alice just wrote: the primary, with both writes.
      expect(await profile(alice, alice.id)).toBe('Alice After');
      expect(await history(alice, chatId)).toEqual(['first', 'second']);
      // Bob did not: the paused replica, without them.
      expect(await profile(bob, alice.id)).toBe('Alice Before');
      expect(await history(bob, chatId)).toEqual(['first']);
      expect(await search(bob, 'Alice After')).toBe(0);

      // Once the sticky period is over, Alice reads from the replica too.
      await new Promise((resolve) => setTimeout(resolve, STICKY_SECONDS * 1000 + 100));
      expect(await profile(alice, alice.id)).toBe('Alice Before');
    } finally {
      await servers.resumeReplay();
    }
    await servers.caughtUp();
    expect(await profile(bob, alice.id)).toBe('Alice After');
    expect(await history(bob, chatId)).toEqual(['first', 'second']);
    expect(await search(bob, 'Alice After')).toBe(1);
  });

  it('with Redis, keeps read-your-writes across instances: written on one, read on the other', async () => {
    const [a, b] = shared as [App, App];
    const [carol, dave] = [await registerUser(a, { displayName: 'Carol Before' }), await registerUser(a)];
    const chatId = await createChat(a, carol, { kind: 'GROUP', title: 'across instances', memberIds: [dave.id] });
    await sendText(a, carol, chatId, 'first');
    await servers.caughtUp();
    await new Promise((resolve) => setTimeout(resolve, STICKY_SECONDS * 1000 + 100));
    await servers.pauseReplay();
    try {
      await gql(a, 'mutation { updateProfile(input: { displayName: "Carol After" }) { displayName } }', {}, { token: carol.accessToken });
      await sendText(a, carol, chatId, 'second');

      // B took none of the writes: it finds the session's mark in Redis and reads from the primary.
      expect(await profile(carol, carol.id, b)).toBe('Carol After');
      expect(await history(carol, chatId, b)).toEqual(['first', 'second']);
      // An instance without Redis cannot know: the paused replica.
      expect(await profile(carol, carol.id, app)).toBe('Carol Before');
      // Dave wrote nothing: the replica on either instance.
      expect(await profile(dave, carol.id, b)).toBe('Carol Before');
      expect(await history(dave, chatId, a)).toEqual(['first']);

      // The mark expires in Redis with the sticky period: B reads Carol's from the replica again.
      await new Promise((resolve) => setTimeout(resolve, STICKY_SECONDS * 1000 + 100));
      expect(await profile(carol, carol.id, b)).toBe('Carol Before');
    } finally {
      await servers.resumeReplay();
    }
  });
});
