// The blind index's re-index after a key rotation (src/messages/search-reindex.ts): stored tokens
// move to the new key's, search finds old messages while entries are mixed and after, a pass cut
// short resumes where it stopped, and once done queries use the new key alone. In process and as a
// BullMQ job. A database of its own: every app walks the whole index.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { keyIdOf, keyringOf } from '../src/env.ts';
import { indexTokens } from '../src/messages/search-index.ts';
import { queryKeyring, runReindexPass } from '../src/messages/search-reindex.ts';
import { REINDEX_QUEUE_NAME } from '../src/messages/search-reindex-runner.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { createChat, gql, registerUser, scratchDatabaseUrl, sendText, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';

const SEARCH = `query ($q: String!) { searchMessages(query: $q, first: 50) { edges { node { id } } } }`;
const EDIT = `mutation ($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id } }`;

const database = scratchDatabaseUrl('kocmoc_reindex');
const [keyA, keyB, keyC] = [randomBytes(32), randomBytes(32), randomBytes(32)];
const base64 = (key: Buffer) => key.toString('base64');
const env = (current: Buffer, old: Buffer[], extra: Record<string, string> = {}) => ({
  DATABASE_URL: database.url,
  MESSAGE_ENCRYPTION_KEY: base64(current),
  ...(old.length > 0 ? { MESSAGE_ENCRYPTION_OLD_KEYS: old.map(base64).join(',') } : {}),
  ...extra,
});
const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let alice: TestUser;
let bob: TestUser;
let group: string;
const word = `rekey${randomBytes(4).toString('hex').replace(/\d/g, (d) => 'ghijklmnop'[Number(d)]!)}`;
const texts = Array.from({ length: 6 }, (_, i) => `${word} message number ${i}`);
let sent: Array<{ id: string }> = [];

interface Entry {
  messageId: string;
  keyId: string;
  tokens: Uint8Array[];
}
const entries = async (on: App) =>
  on.services.prisma.$queryRaw<Entry[]>`
    SELECT "messageId", "keyId", "tokens" FROM "MessageSearch" WHERE "messageId" = ANY(${sent.map((m) => m.id)}::text[]) ORDER BY "messageId"`;
const hex = (tokens: Uint8Array[]) => tokens.map((token) => Buffer.from(token).toString('hex')).sort();
const expectedTokens = (key: Buffer, text: string, old: Buffer[] = []) => hex(indexTokens(keyringOf(key, ...old), group, text));
const searchIds = async (on: App, q = word) =>
  ((await gql(on, SEARCH, { q }, { token: bob.accessToken })).data.searchMessages.edges as Array<{ node: { id: string } }>).map((e) => e.node.id).sort();

async function waitUntilFinished(on: App, keyId: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await on.services.prisma.searchReindex.findUnique({ where: { keyId } });
    if (row?.finishedAt) return row;
    if (Date.now() > deadline) throw new Error(`re-index to ${keyId} not finished: ${JSON.stringify(row)}`);
    await idle(100);
  }
}

beforeAll(async () => {
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  const first = await startTestApp(env(keyA, []));
  try {
    [alice, bob] = await Promise.all([registerUser(first), registerUser(first)]);
    group = await createChat(first, alice, { kind: 'GROUP', title: 'Rekey', memberIds: [bob.id] });
    sent = [];
    for (const text of texts) sent.push(await sendText(first, alice, group, text));
    // A single-key start has nothing to move, and says so.
    await waitUntilFinished(first, keyIdOf(keyA));
  } finally {
    await first.stop();
  }
});
afterAll(async () => {
  await database.drop();
});

describe('search re-index after a key rotation', () => {
  it('moves tokens to the new key in batches, finds old messages while mixed and after, and resumes after a restart', async () => {
    // Rotated, its own background pass off: the pass below is cut short, as by a restart.
    const rotated = await startTestApp(env(keyB, [keyA], { SEARCH_REINDEX_ENABLED: 'false' }));
    try {
      const before = await entries(rotated);
      expect(before.map((entry) => entry.keyId)).toEqual(sent.map(() => keyIdOf(keyA)));
      for (const [i, entry] of before.entries()) expect(hex(entry.tokens)).toEqual(expectedTokens(keyA, texts[i]!));
      const outcome = await runReindexPass(rotated.services, { batchSize: 1, pauseMs: 0, maxBatches: 2 });
      expect(outcome).toBe('stopped');
      const mixed = await entries(rotated);
      expect(mixed.map((entry) => entry.keyId)).toEqual(sent.map((_, i) => keyIdOf(i < 2 ? keyB : keyA)));
      for (const [i, entry] of mixed.entries()) {
        expect(hex(entry.tokens)).toEqual(i < 2 ? expectedTokens(keyB, texts[i]!) : hex(before[i]!.tokens));
        if (i < 2) expect(hex(entry.tokens)).not.toEqual(hex(before[i]!.tokens));
      }
      const state = await rotated.services.prisma.searchReindex.findUniqueOrThrow({ where: { keyId: keyIdOf(keyB) } });
      expect(state).toMatchObject({ cursor: sent[1]!.id, reindexed: 2, finishedAt: null });
      // Mixed: both keys' tokens are looked up.
      expect(await searchIds(rotated)).toEqual(sent.map((m) => m.id).sort());
      expect(Object.keys((await queryKeyring(rotated.services)).keys)).toHaveLength(2);
      // An edit while the pass is under way is indexed under the new key, and the pass leaves it alone.
      await gql(rotated, EDIT, { id: sent[4]!.id, text: `${word} edited meanwhile` }, { token: alice.accessToken });
      texts[4] = `${word} edited meanwhile`;
    } finally {
      await rotated.stop();
    }

    // The restart: the background pass resumes after the stored cursor and finishes.
    const restarted = await startTestApp(env(keyB, [keyA], { SEARCH_REINDEX_BATCH: '2', SEARCH_REINDEX_PAUSE: '0ms' }));
    try {
      const done = await waitUntilFinished(restarted, keyIdOf(keyB));
      // Resumed, not started over: two entries before the restart, three after (the edited one was already on the new key).
      expect(done.reindexed).toBe(5);
      const after = await entries(restarted);
      expect(after.map((entry) => entry.keyId)).toEqual(sent.map(() => keyIdOf(keyB)));
      for (const [i, entry] of after.entries()) expect(hex(entry.tokens)).toEqual(expectedTokens(keyB, texts[i]!));
      expect(await searchIds(restarted)).toEqual(sent.map((m) => m.id).sort());
      expect(await searchIds(restarted, 'edited meanwhile')).toEqual([sent[4]!.id]);
      const metrics = await (await restarted.yoga.fetch('http://kocmoc.test/metrics')).text();
      expect(metrics).toMatch(/^kocmoc_search_reindex_rewritten 3$/m);
      expect(metrics).toMatch(/^kocmoc_search_reindex_finished 1$/m);

      // Done: queries use the new key alone, so an entry left under the old key is no longer found.
      expect(Object.keys((await queryKeyring(restarted.services)).keys)).toEqual([keyIdOf(keyB)]);
      const oldTokens = indexTokens(keyringOf(keyA), group, texts[0]!).map((token) => new Uint8Array(token));
      await restarted.services.prisma.$executeRaw`
        UPDATE "MessageSearch" SET "tokens" = ${oldTokens}::bytea[], "keyId" = ${keyIdOf(keyA)} WHERE "messageId" = ${sent[0]!.id}`;
      expect(await searchIds(restarted)).toEqual(sent.slice(1).map((m) => m.id).sort());
      await restarted.services.prisma.$executeRaw`
        UPDATE "MessageSearch" SET "tokens" = ${indexTokens(keyringOf(keyB), group, texts[0]!).map((t) => new Uint8Array(t))}::bytea[], "keyId" = ${keyIdOf(keyB)}
        WHERE "messageId" = ${sent[0]!.id}`;
    } finally {
      await restarted.stop();
    }
  });

  it('runs as a BullMQ job with Redis, and the old keys can then leave the configuration', async () => {
    const prefix = `kocmoc-test-${randomUUID()}`;
    const redis = connectRedis(testRedisUrl());
    const rotated = await startTestApp(env(keyC, [keyB, keyA], { REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: prefix, SEARCH_REINDEX_PAUSE: '0ms' }));
    try {
      const done = await waitUntilFinished(rotated, keyIdOf(keyC));
      expect(done.reindexed).toBe(sent.length);
      const after = await entries(rotated);
      for (const [i, entry] of after.entries()) expect(hex(entry.tokens)).toEqual(expectedTokens(keyC, texts[i]!));
      // BullMQ's event stream of the queue saw the job for this key complete.
      const events = await redis.xrange(`${prefix}:${REINDEX_QUEUE_NAME}:events`, '-', '+');
      const completed = events.filter(([, fields]) => fields.includes('completed') && fields.includes(`reindex-${keyIdOf(keyC)}`));
      expect(completed).toHaveLength(1);
      expect(await searchIds(rotated)).toEqual(sent.map((m) => m.id).sort());
    } finally {
      await rotated.stop();
      await redis.quit();
    }
    // keyA and keyB now matter to search no more (the messages' own ciphertexts still need them).
    const later = await startTestApp(env(keyC, [keyB, keyA], { SEARCH_REINDEX_ENABLED: 'false' }));
    try {
      expect(Object.keys((await queryKeyring(later.services)).keys)).toEqual([keyIdOf(keyC)]);
      expect(await searchIds(later)).toEqual(sent.map((m) => m.id).sort());
    } finally {
      await later.stop();
    }
  });
});
