// The app through a real PgBouncer in transaction mode (2 server connections for many clients):
// what breaks there (named prepared statements, session advisory locks) is shown first, then the
// app runs through it with DATABASE_POOL_MODE=transaction and migrations on DATABASE_DIRECT_URL.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withClient } from '../src/db/pg-admin.ts';
import { createPrisma } from '../src/db/client.ts';
import { ConfigError } from '../src/env.ts';
import type { App } from '../src/server/app.ts';
import { createChat, registerUser, scratchDatabaseUrl, sendText, startSocketTestApp, testConfig, gql } from './support/helpers.ts';
import { MESSAGE_EVENTS } from './support/operations.ts';
import { startPgBouncer, type PgBouncer } from './support/pgbouncer.ts';
import { freePortIn, haveBinary } from './support/processes.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const SERVER_POOL = 2;

describe('DATABASE_POOL_MODE', () => {
  it('requires DATABASE_DIRECT_URL in transaction mode, for the migrations', () => {
    expect(() => testConfig({ DATABASE_POOL_MODE: 'transaction' })).toThrow(ConfigError);
    expect(() => testConfig({ DATABASE_POOL_MODE: 'transaction' })).toThrow(/DATABASE_DIRECT_URL: required/);
    const config = testConfig({ DATABASE_POOL_MODE: 'transaction', DATABASE_DIRECT_URL: 'postgresql://postgres@127.0.0.1:5432/x' });
    expect(config.database).toMatchObject({ preparedStatements: false, directUrl: 'postgresql://postgres@127.0.0.1:5432/x', poolSize: 10 });
    expect(testConfig().database.preparedStatements).toBe(true);
  });
});

describe.skipIf(!haveBinary('pgbouncer', 'pgbouncer'))('through PgBouncer in transaction mode', () => {
  const scratch = scratchDatabaseUrl('kocmoc_pgbouncer');
  let bouncer: PgBouncer;
  let app: App;
  let url: string;

  beforeAll(async () => {
    bouncer = await startPgBouncer({ port: await freePortIn(17_100, 17_139), upstreamUrl: scratch.url, poolSize: SERVER_POOL });
    // A new database: the app creates and migrates it over the direct URL, then serves through PgBouncer.
    const started = await startSocketTestApp({
      DATABASE_URL: bouncer.urlFor(scratch.url),
      DATABASE_DIRECT_URL: scratch.url,
      DATABASE_POOL_MODE: 'transaction',
      DATABASE_POOL_SIZE: '8',
    });
    app = started.app;
    url = started.url;
  });

  afterAll(async () => {
    await app?.stop();
    await bouncer?.stop();
    await scratch.drop();
  });

  it('breaks named prepared statements: a statement prepared by one client reaches another, or is missing', async () => {
    const named = createPrisma(bouncer.urlFor(scratch.url), { poolSize: 8, preparedStatements: true });
    const unnamed = createPrisma(bouncer.urlFor(scratch.url), { poolSize: 8, preparedStatements: false });
    const load = (prisma: typeof named) =>
      Promise.allSettled(Array.from({ length: 60 }, (_, index) => prisma.user.findMany({ where: { username: `nobody_${index % 3}` }, take: 1 })));
    try {
      const failures = (await load(named)).filter((result) => result.status === 'rejected');
      expect(failures.length).toBeGreaterThan(0);
      expect(String((failures[0] as PromiseRejectedResult).reason)).toMatch(/prepared statement/);
      expect((await load(unnamed)).filter((result) => result.status === 'rejected')).toEqual([]);
    } finally {
      await named.$disconnect();
      await unnamed.$disconnect();
    }
  });

  it('breaks session advisory locks: a second client gets the lock the first still holds', async () => {
    const through = bouncer.urlFor(scratch.url);
    await withClient(through, async (first) => {
      expect((await first.query('SELECT pg_try_advisory_lock(4242) AS locked')).rows[0].locked).toBe(true);
      // Directly, the lock is held by a server session PgBouncer now lends to anyone...
      await withClient(scratch.url, async (direct) => {
        expect((await direct.query('SELECT pg_try_advisory_lock(4242) AS locked')).rows[0].locked).toBe(false);
      });
      // ...so another client "takes" it again (LIFO: the same server connection) instead of waiting.
      await withClient(through, async (second) => {
        expect((await second.query('SELECT pg_try_advisory_lock(4242) AS locked')).rows[0].locked).toBe(true);
        await second.query('SELECT pg_advisory_unlock_all()');
      });
    });
  });

  it('migrated the new database over the direct URL', async () => {
    await withClient(scratch.url, async (client) => {
      const { rows } = await client.query('SELECT count(*)::int AS applied FROM _prisma_migrations WHERE finished_at IS NOT NULL');
      expect(rows[0].applied).toBeGreaterThan(10);
    });
    expect(app.services.config.database.preparedStatements).toBe(false);
  });

  it('serves sends, history, live events and sinceSeq catch-up with many clients on 2 server connections', async () => {
    const before = await xactCount(bouncer, scratch.url);
    const [alice, bob] = [await registerUser(app), await registerUser(app)];
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'pooled', memberIds: [bob.id] });
    const connection = connect(url, bob.accessToken);
    const live = subscribe(connection, MESSAGE_EVENTS, { chatId });
    await settle();
    // Concurrent transactions (each send locks the chat row and bumps its seq) on 8 client connections.
    const sent = await Promise.all(Array.from({ length: 30 }, (_, index) => sendText(app, index % 2 ? alice : bob, chatId, `m${index}`)));
    expect(new Set(sent.map((message) => message.seq)).size).toBe(30);
    const seen = new Set<number>();
    for (let index = 0; index < 30; index++) seen.add((await live.next(20_000)).data!.messageEvents.seq);
    expect(seen).toEqual(new Set(sent.map((message) => message.seq)));

    const history = await gql(app, `query ($c: ID!) { chat(id: $c) { messages(last: 50) { edges { node { seq } } } } }`, { c: chatId }, { token: bob.accessToken });
    expect(history.errors).toBeUndefined();
    expect(history.data.chat.messages.edges.map((edge: { node: { seq: number } }) => edge.node.seq)).toEqual([...seen].sort((a, b) => a - b));

    const catchUp = subscribe(connection, MESSAGE_EVENTS, { chatId, sinceSeq: 20 });
    const replayed = [];
    for (let index = 0; index < 10; index++) replayed.push((await catchUp.next(20_000)).data!.messageEvents.seq);
    expect(replayed).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30].map((offset) => offset + Math.min(...seen) - 1));
    await connection.dispose();

    const pools = (await bouncer.admin('SHOW POOLS')).filter((pool) => pool.database === new URL(scratch.url).pathname.slice(1));
    const servers = pools.reduce((sum, pool) => sum + Number(pool.sv_active) + Number(pool.sv_idle) + Number(pool.sv_used) + Number(pool.sv_tested) + Number(pool.sv_login), 0);
    expect(servers).toBeLessThanOrEqual(SERVER_POOL);
    expect((await xactCount(bouncer, scratch.url)) - before).toBeGreaterThan(60);
  });
});

async function xactCount(bouncer: PgBouncer, databaseUrl: string): Promise<number> {
  const name = new URL(databaseUrl).pathname.slice(1);
  const stats = await bouncer.admin('SHOW STATS');
  return Number(stats.find((row) => row.database === name)?.total_xact_count ?? 0);
}
