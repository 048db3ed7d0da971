// Delivery of live events when the database falters and when subscribers resume: real PostgreSQL
// and graphql-ws clients on a real port. The outages and table locks here would stall other test
// files, so this file runs on a database of its own.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { channels, type ChatTopicEvent } from '../src/realtime/events.ts';
import { codeOf, createChat, feedsOnOwnBus, gql, registerUser, scratchDatabaseUrl, sendText, sendWithoutEvent, startTestApp, type TestUser } from './support/helpers.ts';
import { databaseOutages, type DatabaseOutage } from './support/faults.ts';
import { tableLocks } from './support/locks.ts';
import { MESSAGE_EVENTS, SEND_MESSAGE } from './support/operations.ts';
import { openConnections, subscribe, type Subscription } from './support/ws-helpers.ts';

const scratch = scratchDatabaseUrl('kocmoc_delivery');
let outage: DatabaseOutage;

beforeAll(async () => {
  await ensureDatabase(scratch.url);
  await applyMigrations({ databaseUrl: scratch.url });
  outage = await databaseOutages(scratch.url);
});
afterAll(async () => {
  await outage?.close();
  await scratch.drop();
});

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const created = (chatId: string, message: { id: string; seq: number }) =>
  ({ kind: 'message', type: 'CREATED', chatId, messageId: message.id, seq: message.seq }) satisfies ChatTopicEvent;
const seqsOf = (subscription: Subscription) => subscription.results.map((result) => result.data?.messageEvents?.seq);

/** Two members of a new direct chat. */
async function directChat(app: App): Promise<{ alice: TestUser; bob: TestUser; chatId: string }> {
  const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  return { alice, bob, chatId: await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] }) };
}

const ownFeeds = (app: App, gapTimeoutMs: number) => feedsOnOwnBus(app, { holdMs: 20, gapTimeoutMs });

/** A subscriber that records the positions it is handed and the errors that end it. */
function recorder() {
  const seqs: number[] = [];
  const failures: Error[] = [];
  return { seqs, failures, event: (event: ChatTopicEvent) => seqs.push((event as { seq: number }).seq), fail: (error: Error) => failures.push(error) };
}

describe('a database outage', () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ DATABASE_URL: scratch.url, PUSH_ENABLED: 'false' });
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('answers UNAVAILABLE with retryAfterSeconds while the database refuses connections, and serves again once it is back', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    await outage.begin();
    try {
      const refused = await gql(app, SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text: 'during the outage' } }, { token: alice.accessToken });
      expect(codeOf(refused)).toBe('UNAVAILABLE');
      expect(refused.errors?.[0]?.extensions?.retryAfterSeconds).toBe(1);
    } finally {
      await outage.end();
    }
    expect((await sendText(app, alice, chatId, 'after the outage')).seq).toBe(1);
  });

  it('holds a chat feed’s later events while reading its gap fails, then hands out every position in order', async () => {
    const { bus, feeds } = ownFeeds(app, 10_000);
    const { alice, chatId } = await directChat(app);
    const subscriber = recorder();
    const stop = await feeds.follow(chatId, subscriber);
    // Sent through the app: our bus never hears of them.
    const sent = [await sendText(app, alice, chatId, '1'), await sendText(app, alice, chatId, '2'), await sendText(app, alice, chatId, '3')];
    await outage.begin();
    try {
      await bus.publish(channels.chat(chatId), created(chatId, sent[2]!)); // 3 arrives; 1 and 2 are read, and the read fails
      await idle(1_000);
      expect(subscriber.seqs).toEqual([]);
    } finally {
      await outage.end();
    }
    await vi.waitFor(() => expect(subscriber.seqs).toEqual([1, 2, 3]), { timeout: 5_000 });
    expect(subscriber.failures).toEqual([]);
    stop();
    await bus.close();
  });

  it('ends every subscriber of a feed whose gap stays open past the bound with UNAVAILABLE, and the next follower starts afresh', async () => {
    const { bus, feeds } = ownFeeds(app, 500);
    const { alice, chatId } = await directChat(app);
    const [first, second] = [recorder(), recorder()];
    await feeds.follow(chatId, first);
    await feeds.follow(chatId, second);
    const sent = [await sendText(app, alice, chatId, '1'), await sendText(app, alice, chatId, '2')];
    await outage.begin();
    try {
      await bus.publish(channels.chat(chatId), created(chatId, sent[1]!));
      await vi.waitFor(() => expect(second.failures).toHaveLength(1), { timeout: 3_000 });
    } finally {
      await outage.end();
    }
    for (const subscriber of [first, second]) {
      expect(subscriber.seqs).toEqual([]); // never 2 without 1
      expect(subscriber.failures.map((error) => (error as { extensions?: { code?: string } }).extensions?.code)).toEqual(['UNAVAILABLE']);
    }
    expect(feeds.lastSeq(chatId)).toBeUndefined();

    const starts: number[] = [];
    const next = recorder();
    const stop = await feeds.follow(chatId, { ...next, start: (from) => starts.push(from) });
    expect(starts).toEqual([2]);
    const third = await sendText(app, alice, chatId, '3');
    await bus.publish(channels.chat(chatId), created(chatId, third));
    expect(next.seqs).toEqual([3]);
    stop();
    await bus.close();
  });
});

describe('subscriptions through a database outage', () => {
  const sockets = openConnections();
  afterAll(() => sockets.closeAll());

  /**
   * Runs `test` on an app of its own (`env`) listening on a port, with Bob subscribed to a direct
   * chat with Alice in which message 1 reached him; stops the app after it.
   */
  async function withSubscribedApp(env: Record<string, string>, test: (s: Awaited<ReturnType<typeof subscribed>>) => Promise<void>) {
    const app = await startTestApp({ DATABASE_URL: scratch.url, PUSH_ENABLED: 'false', ...env });
    try {
      await test(await subscribed(app, (await app.start()).url));
    } finally {
      await app.stop();
    }
  }

  async function subscribed(app: App, url: string) {
    const { alice, bob, chatId } = await directChat(app);
    const connection = sockets.connect(url, bob.accessToken);
    const subscription = subscribe(connection, MESSAGE_EVENTS, { chatId });
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(0));
    await sendText(app, alice, chatId, '1');
    expect((await subscription.next()).data.messageEvents.seq).toBe(1);
    return { app, url, alice, bob, chatId, connection, subscription };
  }

  /**
   * Messages 2 and 3 commit while their instance's publishing fails, but for 3's event, which
   * arrives during a database outage; `during` runs before the outage ends.
   */
  async function gapDuringOutage({ app, alice, chatId }: Awaited<ReturnType<typeof subscribed>>, during: () => Promise<void>) {
    await sendWithoutEvent(app, alice, chatId, '2');
    const third = await sendWithoutEvent(app, alice, chatId, '3');
    await outage.begin();
    try {
      await app.services.events.message(chatId, 'CREATED', third);
      await during();
    } finally {
      await outage.end();
    }
  }

  it('keeps the socket through an outage shorter than FEED_GAP_TIMEOUT_MS and delivers every message in order once the database is back', () =>
    withSubscribedApp({}, async (s) => {
      await gapDuringOutage(s, async () => expect(await s.subscription.nothingWithin(1_500)).toBe(true));
      const delivered = [await s.subscription.next(), await s.subscription.next()];
      expect(delivered.map((result) => result.data.messageEvents.seq)).toEqual([2, 3]);
      expect(delivered.map((result) => result.data.messageEvents.message.text)).toEqual(['2', '3']);
      expect(await Promise.race([s.connection.closed, idle(100).then(() => 'open')])).toBe('open');
      expect(await s.subscription.nothingWithin(200)).toBe(true);
    }));

  it('ends a subscription whose gap outlasts FEED_GAP_TIMEOUT_MS with an UNAVAILABLE error, never a complete; resubscribing from the last seq misses nothing', () =>
    withSubscribedApp({ FEED_GAP_TIMEOUT_MS: '600' }, async (s) => {
      await gapDuringOutage(s, async () => expect(await s.subscription.ending).toBe('error'));
      const ended = s.subscription.results.at(-1)!;
      expect(ended.errors?.[0]?.extensions).toEqual({ code: 'UNAVAILABLE', retryAfterSeconds: 1 });
      expect(ended.errors?.[0]?.message).toMatch(/resubscribe with sinceSeq/);

      const resumed = subscribe(sockets.connect(s.url, s.bob.accessToken), MESSAGE_EVENTS, { chatId: s.chatId, sinceSeq: 1 });
      expect([(await resumed.next()).data.messageEvents.seq, (await resumed.next()).data.messageEvents.seq]).toEqual([2, 3]);
      await sendText(s.app, s.alice, s.chatId, '4');
      expect((await resumed.next()).data.messageEvents.seq).toBe(4);
    }));

  it('ends a subscription that cannot start for want of the database with an UNAVAILABLE error message, not a complete', () =>
    withSubscribedApp({}, async (s) => {
      await outage.begin();
      let refused: Subscription;
      try {
        refused = subscribe(s.connection, MESSAGE_EVENTS, { chatId: s.chatId, sinceSeq: 0 });
        expect(await refused.ending).toBe('error');
      } finally {
        await outage.end();
      }
      expect(refused.results).toEqual([{ errors: [expect.objectContaining({ extensions: { code: 'UNAVAILABLE', retryAfterSeconds: 1 } })] }]);
    }));

  it('closes a connection it cannot authenticate for want of the database with 1013 (try again later), which graphql-ws clients retry, not 4500', () =>
    withSubscribedApp({}, async (s) => {
      // Someone who has not connected yet: no session of theirs is cached.
      const carol = await registerUser(s.app);
      await outage.begin();
      try {
        expect(await sockets.connect(s.url, carol.accessToken).closed).toBe(1013);
      } finally {
        await outage.end();
      }
      await sockets.connect(s.url, carol.accessToken).connected;
    }));

  it('executes an event again when its execution met the database down, so the subscriber gets it whole once the database is back', () =>
    withSubscribedApp({}, async (s) => {
      const locks = await tableLocks(scratch.url);
      try {
        const second = await sendWithoutEvent(s.app, s.alice, s.chatId, '2');
        // Its membership check passes; its execution (which loads the message) waits for the lock
        // until the outage ends that statement's connection.
        const lock = await locks.lock('Message');
        await s.app.services.events.message(s.chatId, 'CREATED', second);
        await locks.waitsFor('FROM "public"."Message"');
        await outage.begin();
        try {
          expect(await s.subscription.nothingWithin(1_000)).toBe(true);
        } finally {
          await outage.end();
          await lock.release();
        }
        expect((await s.subscription.next()).data.messageEvents).toMatchObject({ seq: 2, message: { text: '2' } });
        expect(s.subscription.results.every((result) => result.errors === undefined)).toBe(true);
      } finally {
        await locks.close();
      }
    }));
});

describe('resuming with sinceSeq', () => {
  const sockets = openConnections();
  let app: App;
  let url: string;
  /** Sees each SQL statement as Prisma reports it; set by a test to act at that very moment. */
  let onStatement: ((sql: string) => void) | undefined;
  let locks: Awaited<ReturnType<typeof tableLocks>>;

  beforeAll(async () => {
    locks = await tableLocks(scratch.url);
    app = await startTestApp({ DATABASE_URL: scratch.url, PUSH_ENABLED: 'false' }, { onQuery: (sql) => onStatement?.(sql) });
    url = (await app.start()).url;
  });
  afterAll(async () => {
    await sockets.closeAll();
    await app?.stop();
    await locks?.close();
  });

  /** The next `count` positions `subscription` delivers, then nothing more for a while. */
  async function nextSeqs(subscription: Subscription, count: number) {
    const seqs = [];
    for (let i = 0; i < count; i++) seqs.push((await subscription.next()).data.messageEvents.seq);
    expect(await subscription.nothingWithin(200)).toBe(true);
    return seqs;
  }

  it('sends exactly the positions after sinceSeq, in order, when live events arrive while its replay is held up', async () => {
    const { alice, bob, chatId } = await directChat(app);
    // Alice keeps the chat's feed open, so Bob's subscription attaches to a feed that is already live.
    subscribe(sockets.connect(url, alice.accessToken), MESSAGE_EVENTS, { chatId });
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(0));
    for (const text of ['1', '2', '3']) await sendText(app, alice, chatId, text);
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(3));
    const later = [await sendWithoutEvent(app, alice, chatId, '4'), await sendWithoutEvent(app, alice, chatId, '5'), await sendWithoutEvent(app, alice, chatId, '6')];

    const lock = await locks.lock('Message');
    let resumed: Subscription;
    try {
      resumed = subscribe(sockets.connect(url, bob.accessToken), MESSAGE_EVENTS, { chatId, sinceSeq: 1 });
      await locks.waitsFor('FROM "public"."Message"'); // the replay of 2 and 3 waits for the lock
      // Live events for 4 to 6 arrive meanwhile, 5 first (another instance's publish can overtake).
      for (const message of [later[1]!, later[0]!, later[2]!]) await app.services.events.message(chatId, 'CREATED', message);
      expect(await resumed.nothingWithin(300)).toBe(true);
    } finally {
      await lock.release();
    }
    expect(await nextSeqs(resumed, 5)).toEqual([2, 3, 4, 5, 6]);
  });

  it('executes a live event once for subscribers that resumed from different positions', async () => {
    const users = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, users[0]!, { kind: 'GROUP', title: 'Resumed', memberIds: [users[1]!.id, users[2]!.id] });
    for (const text of ['1', '2', '3']) await sendText(app, users[0]!, chatId, text);
    // readBy is read per execution (by a loader of the execution's own), where Prisma batches nothing.
    const withReaders = `subscription ($chatId: ID, $sinceSeq: Int) { messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) { seq message { readBy { id } } } }`;
    const resumed = users.map((user, index) => subscribe(sockets.connect(url, user.accessToken), withReaders, { chatId, sinceSeq: index }));
    for (const [index, subscription] of resumed.entries()) expect(await nextSeqs(subscription, 3 - index)).toEqual([1, 2, 3].slice(index));

    // Counted from its publishing on: what follows is the event's delivery alone.
    const fourth = await sendWithoutEvent(app, users[0]!, chatId, '4');
    const statements: string[] = [];
    onStatement = (sql) => statements.push(sql);
    await app.services.events.message(chatId, 'CREATED', fourth);
    for (const subscription of resumed) expect((await subscription.next()).data.messageEvents.seq).toBe(4);
    onStatement = undefined;
    // One execution for all three, not one per sinceSeq: the readers are read once.
    expect(statements.filter((sql) => sql.includes('GROUP BY "public"."ChatMember"."chatId"'))).toHaveLength(1);
  });

  it('publishes a message again when a send is retried with its clientMessageId, so a last message whose instance died before publishing still arrives', async () => {
    const { alice, bob, chatId } = await directChat(app);
    const subscription = subscribe(sockets.connect(url, bob.accessToken), MESSAGE_EVENTS, { chatId });
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(0));
    const first = await sendWithoutEvent(app, alice, chatId, 'unacknowledged', { clientMessageId: 'retried-1' });
    expect(await subscription.nothingWithin(300)).toBe(true);

    const retried = await sendText(app, alice, chatId, 'unacknowledged', { clientMessageId: 'retried-1' });
    expect(retried.id).toBe(first.id);
    expect((await subscription.next()).data.messageEvents).toMatchObject({ seq: 1, message: { id: first.id } });
    // A retry whose first attempt was published after all is a repeat the feed drops.
    await sendText(app, alice, chatId, 'unacknowledged', { clientMessageId: 'retried-1' });
    expect(await subscription.nothingWithin(300)).toBe(true);
  });

  it('sends exactly the positions after sinceSeq when live events arrive while the chat’s feed is being created on an instance that just started', async () => {
    const { alice, bob, chatId } = await directChat(app);
    await sendText(app, alice, chatId, '1');
    const later = [await sendWithoutEvent(app, alice, chatId, '2'), await sendWithoutEvent(app, alice, chatId, '3')];
    // The feed reads where the chat stands just before 2 and 3 commit (put back afterwards), and
    // their events arrive while it reads: the race a subscriber resuming on a fresh instance met.
    const { prisma } = app.services;
    await prisma.chat.update({ where: { id: chatId }, data: { lastSeq: 1 } });
    const readsPosition = (sql: string) => sql.includes('"lastSeq"') && sql.includes('FROM "public"."Chat"');
    onStatement = (sql) => {
      if (!readsPosition(sql)) return;
      onStatement = undefined;
      for (const message of later) void app.services.events.message(chatId, 'CREATED', message);
    };
    try {
      const resumed = subscribe(sockets.connect(url, bob.accessToken), MESSAGE_EVENTS, { chatId, sinceSeq: 0 });
      expect(await nextSeqs(resumed, 3)).toEqual([1, 2, 3]);
    } finally {
      onStatement = undefined;
      await prisma.chat.update({ where: { id: chatId }, data: { lastSeq: 3 } });
    }
  });
});
