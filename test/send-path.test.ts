// What one sendMessage costs the database, with and without Redis: statements per send counted
// from Prisma's query log, and the hot statements' plans.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { Prisma } from '../src/generated/prisma/client.ts';
import { sendMessage } from '../src/messages/messages.ts';
import { recipientsOf } from '../src/notifications/jobs.ts';
import { takeBatchWithRecipients } from '../src/notifications/outbox.ts';
import { createChat, gql, registerUser, scratchDatabaseUrl, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';
import { SEND_MESSAGE_RECEIPT } from './support/operations.ts';

// The outbox relay takes the whole table: this file keeps a database of its own (as push.test.ts).
const database = scratchDatabaseUrl('kocmoc_send_path');
const SENDS = 40;

beforeAll(async () => {
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
});
afterAll(() => database.drop());

/** An app on this file's database that logs its statements, with `members` users and one group of them. */
async function startCountingApp(env: Record<string, string>, members = 5) {
  const statements: string[] = [];
  const app = await startTestApp({ DATABASE_URL: database.url, ...env }, { onQuery: (sql) => statements.push(sql) });
  await app.start();
  const users: TestUser[] = [];
  for (let i = 0; i < members; i++) users.push(await registerUser(app));
  const [owner, ...rest] = users as [TestUser, ...TestUser[]];
  const chatId = await createChat(app, owner, { kind: 'GROUP', title: 'Send path', memberIds: rest.map((user) => user.id) });
  return { app, statements, users, chatId };
}

/** Until the outbox is empty (with Redis, jobs then wait for a worker that this file does not run). */
async function outboxRelayed(app: App) {
  for (let i = 0; i < 200 && (await app.services.prisma.notificationOutbox.count()) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(await app.services.prisma.notificationOutbox.count()).toBe(0);
}

/** SENDS concurrent sends by all members (each has sent once before, so sessions are cached); the statements they caused once the outbox is relayed. */
/** A send selecting only what the insert returns (as the send-message bench does), so the answer reads nothing more. */
async function send(app: App, sender: TestUser, chatId: string, text: string) {
  const result = await gql(app, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text } }, { token: sender.accessToken });
  expect(result.errors).toBeUndefined();
}

async function statementsOfSends(app: App, statements: string[], users: TestUser[], chatId: string) {
  await Promise.all(users.map((user) => send(app, user, chatId, 'warm-up')));
  await outboxRelayed(app);
  const before = statements.length;
  await Promise.all(Array.from({ length: SENDS }, (_, i) => send(app, users[i % users.length]!, chatId, `send ${i}`)));
  await outboxRelayed(app);
  return statements.slice(before).filter((sql) => !isOwnOrPeriodicRead(sql));
}

/** The waiting's own count queries, and the maintenance flag's periodic read: not the sends'. */
const isOwnOrPeriodicRead = (sql: string) => /SELECT COUNT\(/i.test(sql) || sql.includes('"Maintenance"');

const isInsert = (sql: string) => sql.includes('WITH next AS');
const isRelay = (sql: string) => sql.includes('"NotificationOutbox"') && !isInsert(sql);

describe('statements per sendMessage', () => {
  it('without Redis: the insert per send, and one statement per relayed batch that also finds the recipients', async () => {
    const { app, statements, users, chatId } = await startCountingApp({});
    try {
      const issued = await statementsOfSends(app, statements, users, chatId);
      expect(issued.filter(isInsert)).toHaveLength(SENDS);
      const relay = issued.filter(isRelay);
      expect(relay.length).toBeGreaterThan(0);
      // One DELETE … RETURNING with the recipients joined per batch: no transaction, no per-message reads.
      for (const sql of relay) expect(sql).toMatch(/WITH taken AS \(\s*DELETE FROM "NotificationOutbox"/);
      expect(issued.filter((sql) => !isInsert(sql) && !isRelay(sql))).toEqual([]);
      expect(relay.length).toBeLessThanOrEqual(SENDS / 4);
    } finally {
      await app.stop();
    }
  });

  it('with Redis: the insert per send and a transaction per relayed batch (the worker fans out)', async () => {
    const { app, statements, users, chatId } = await startCountingApp({ REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: `send-path-${process.pid}` });
    try {
      const issued = await statementsOfSends(app, statements, users, chatId);
      expect(issued.filter(isInsert)).toHaveLength(SENDS);
      // Prisma logs a transaction's COMMIT, not its BEGIN.
      expect(issued).toContain('COMMIT');
      expect(issued.filter((sql) => !isInsert(sql) && !isRelay(sql) && sql !== 'COMMIT')).toEqual([]);
      // The fan-out job, as the worker runs it: one statement for every recipient of a message.
      const [message] = await app.services.prisma.message.findMany({ where: { chatId }, orderBy: { seq: 'desc' }, take: 1 });
      const before = statements.length;
      await app.notifications.process('fan-out', { messageId: message!.id });
      // The relay's 5-second poll (a transaction of its own) and the maintenance read may land in between.
      const job = statements.slice(before).filter((sql) => !isOwnOrPeriodicRead(sql) && !isRelay(sql) && sql !== 'COMMIT');
      expect(job).toHaveLength(1);
      expect(job[0]).toContain('"PushSubscription"');
    } finally {
      await app.stop();
    }
  });
});

describe('plans of the send path', () => {
  it("finds a message's recipients on indexes only", async () => {
    const { app, chatId } = await startCountingApp({ PUSH_ENABLED: 'false' }, 2);
    try {
      const { prisma } = app.services;
      const [message] = await prisma.message.findMany({ where: { chatId }, take: 1 });
      const messageId = message?.id ?? 'none';
      // Tiny tables make sequential scans cheapest; with them priced out, a plan still scanning a
      // table would mean no index serves that access.
      const plan = await prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe('SET LOCAL enable_seqscan = off');
        const rows = await tx.$queryRaw<Array<{ 'QUERY PLAN': unknown }>>`EXPLAIN (FORMAT JSON) ${recipientsOf(Prisma.sql`${messageId}`)}`;
        return JSON.stringify(rows[0]!['QUERY PLAN']);
      });
      expect(plan).not.toContain('Seq Scan');
      for (const table of ['Message', 'ChatMember', 'PushSubscription', 'Session']) expect(plan).toContain(`"Relation Name":"${table}"`);
    } finally {
      await app.stop();
    }
  });
});

describe('plans of the outbox relay without Redis', () => {
  it('probes the members of each taken message by chat, never the whole ChatMember table, with 40,000 memberships', async () => {
    const { app, users, chatId } = await startCountingApp({ PUSH_ENABLED: 'false' }, 2);
    const { prisma } = app.services;
    await send(app, users[0]!, chatId, 'one to relay');
    const tag = `plan${process.pid}`;
    try {
      // As a deployment has: many memberships, one chat of 10,000 and 100 of 300 (as the bench
      // database where the relay hashed them all), statistics up to date.
      await prisma.$executeRawUnsafe(`INSERT INTO "User" ("id", "username", "displayName", "updatedAt")
        SELECT '${tag}-u' || i, '${tag}_' || i, 'Plan ' || i, now() FROM generate_series(1, 10000) i`);
      await prisma.$executeRawUnsafe(`INSERT INTO "Chat" ("id", "kind") SELECT '${tag}-c' || i, 'GROUP' FROM generate_series(0, 100) i`);
      await prisma.$executeRawUnsafe(`INSERT INTO "ChatMember" ("chatId", "userId")
        SELECT '${tag}-c' || c, '${tag}-u' || (1 + (c * 7 + m) % 10000) FROM generate_series(1, 100) c, generate_series(1, 300) m
        UNION ALL SELECT '${tag}-c0', '${tag}-u' || i FROM generate_series(1, 10000) i`);
      const [message] = await prisma.message.findMany({ where: { chatId }, take: 1 });
      await prisma.notificationOutbox.deleteMany({});
      await prisma.notificationOutbox.createMany({ data: Array.from({ length: 50 }, () => ({ messageId: message!.id })) });
      await prisma.$executeRawUnsafe('ANALYZE "User", "Chat", "ChatMember", "NotificationOutbox", "Message", "PushSubscription", "Session"');

      const rows = await prisma.$queryRaw<Array<{ 'QUERY PLAN': unknown }>>`EXPLAIN (FORMAT JSON) ${takeBatchWithRecipients(200)}`;
      const scans: Array<Record<string, unknown>> = [];
      const walk = (node: Record<string, unknown>) => {
        if (node['Relation Name'] === 'ChatMember') scans.push(node);
        for (const child of (node.Plans as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
      };
      walk((rows[0]!['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
      expect(scans.length).toBeGreaterThan(0);
      for (const scan of scans) {
        expect(scan['Node Type']).not.toBe('Seq Scan');
        expect(`${scan['Index Cond'] ?? ''}${scan['Recheck Cond'] ?? ''}`).toMatch(/"chatId" = m\."chatId"/);
      }
    } finally {
      await prisma.notificationOutbox.deleteMany({});
      await prisma.$executeRawUnsafe(`DELETE FROM "Chat" WHERE "id" LIKE '${tag}-c%'`);
      await prisma.$executeRawUnsafe(`DELETE FROM "User" WHERE "id" LIKE '${tag}-u%'`);
      await app.stop();
    }
  });
});

describe('the sender’s request', () => {
  it('without Redis, answers before the message is handed to the chat’s local subscribers', async () => {
    const { app, users, chatId } = await startCountingApp({ PUSH_ENABLED: 'false' }, 2);
    try {
      const order: string[] = [];
      const stop = await app.services.chatFeeds.follow(chatId, { event: (event) => void order.push(`handed out ${event.kind}`), fail: () => {} });
      await sendMessage(app.services, users[0]!.id, { chatId, kind: 'TEXT', text: 'after the answer' });
      order.push('answered');
      for (let i = 0; i < 50 && order.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      stop();
      expect(order).toEqual(['answered', 'handed out message']);
    } finally {
      await app.stop();
    }
  });
});
