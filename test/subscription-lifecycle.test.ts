// Ending subscriptions, and stopping the app, while their work is under way: real PostgreSQL, Redis
// and graphql-ws clients on a real port. A table lock holds that work at a known point, so this
// file runs on a database of its own (the lock would stall the other test files).
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { capturedLogs, createChat, gql, registerUser, scratchDatabaseUrl, sendText, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';
import { CHAT_EVENTS, MESSAGE_EVENTS, PRESENCE, START_TYPING, TYPING } from './support/operations.ts';
import { tableLocks } from './support/locks.ts';
import { connect, openConnections, subscribe } from './support/ws-helpers.ts';

const REDIS_URL = testRedisUrl();
const EVENTS = 20;

const scratch = scratchDatabaseUrl('kocmoc_lifecycle');
let admin: pg.Client;
let redis: Redis;
let locks: Awaited<ReturnType<typeof tableLocks>>;

beforeAll(async () => {
  await ensureDatabase(scratch.url);
  await applyMigrations({ databaseUrl: scratch.url });
  admin = new pg.Client({ connectionString: scratch.url });
  await admin.connect();
  locks = await tableLocks(scratch.url);
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  await admin?.end();
  await locks?.close();
  redis?.disconnect();
  await scratch.drop();
});

const lockTable = (table: string) => locks.lock(table);
const waitsForLock = (fragment: string) => locks.waitsFor(fragment);

/**
 * The start of sendMessage's one statement. pg_stat_activity shows only the first
 * track_activity_query_size bytes (1 KiB) of a statement, and its INSERT lies beyond them.
 */
const SEND_STATEMENT = 'UPDATE "Chat" c SET "lastSeq" = c."lastSeq" + 1';

/** A graphql-ws client that, once acknowledged, stops reading its socket: it never answers a close frame. */
async function unresponsiveClient(url: string, token: string) {
  const socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
  // Answering the close frame once it reads again fails: the server has cut the connection by then.
  socket.on('error', () => {});
  let tcp: Socket | undefined;
  socket.once('upgrade', (response) => (tcp = response.socket));
  const closed = new Promise<number>((resolve) => socket.once('close', resolve));
  await once(socket, 'open');
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
  const [ack] = await once(socket, 'message');
  expect(JSON.parse(String(ack))).toEqual({ type: 'connection_ack' });
  tcp!.pause();
  return {
    /** Reads again: what the server sent meanwhile arrives, and then the close event's code. */
    resume() {
      tcp!.resume();
      return closed;
    },
  };
}

describe('a subscription the client ended', () => {
  let app: App;
  let url: string;
  const queries: string[] = [];
  const prefix = `kocmoc-test:${randomUUID()}:`;
  const sockets = openConnections();

  beforeAll(async () => {
    app = await startTestApp(
      { DATABASE_URL: scratch.url, REDIS_URL, PUSH_ENABLED: 'false' },
      { channelPrefix: prefix, presence: { keyPrefix: prefix }, onQuery: (sql) => queries.push(sql) },
    );
    url = (await app.start()).url;
  });
  afterAll(async () => {
    await sockets.closeAll();
    await app?.stop();
  });

  /** Bob subscribed to a direct chat with EVENTS messages from Alice in it. */
  async function subscribedChat() {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const sent = [];
    for (let i = 0; i < EVENTS; i++) sent.push(await sendText(app, alice, chatId, `message ${i}`));
    const connection = sockets.connect(url, bob.accessToken);
    const subscription = subscribe(connection, MESSAGE_EVENTS, { chatId });
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(EVENTS));
    return { chatId, sent, connection, subscription };
  }

  const endings = {
    'completes the operation': (s: Awaited<ReturnType<typeof subscribedChat>>) => s.subscription.unsubscribe(),
    'closes the socket': (s: Awaited<ReturnType<typeof subscribedChat>>) => void s.connection.dispose(),
  };
  type Ending = keyof typeof endings;
  const endingNames = Object.keys(endings) as Ending[];

  /** The chat's feed and its Redis subscription are gone, so the stream's clean-up ran. */
  async function released(chatId: string) {
    const channel = `${prefix}chat:${chatId}`;
    await vi.waitFor(async () => {
      expect(app.services.chatFeeds.lastSeq(chatId)).toBeUndefined();
      expect(await redis.pubsub('NUMSUB', channel)).toEqual([channel, 0]);
    });
  }

  /** Resolves once no SQL statement has run for a while: whatever was still coming has come. */
  async function quiet() {
    for (let seen = -1; seen !== queries.length; ) {
      seen = queries.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }

  /**
   * Publishes EVENTS events to Bob's subscription while a lock on `table` holds up the first, lets
   * `queued` wait for the rest to line up, has the client end the subscription and lifts the lock.
   * Returns how many statements containing a fragment ran from the publishing on.
   */
  async function endWhileHeldUp(ending: Ending, table: string, queued = async (_ran: (fragment: string) => number) => {}) {
    const subscribed = await subscribedChat();
    const from = queries.length;
    const ran = (fragment: string) => queries.slice(from).filter((sql) => sql.includes(fragment)).length;
    const lock = await lockTable(table);
    try {
      for (const message of subscribed.sent) await app.services.events.message(subscribed.chatId, 'EDITED', message);
      await waitsForLock(`"${table}"`);
      await queued(ran);
      endings[ending](subscribed);
      await released(subscribed.chatId);
    } finally {
      await lock.release();
    }
    await quiet();
    return ran;
  }

  it.each(endingNames)('executes none of the events already queued for it when the client %s', async (ending) => {
    // The first event's execution waits for the lock while every event passes its membership check
    // (not locked) and queues up behind it.
    const ran = await endWhileHeldUp(ending, 'Message', (ranSoFar) => vi.waitFor(() => expect(ranSoFar('"ChatMember"')).toBe(EVENTS)));
    // Only the execution already waiting ran; the other events were dropped with the subscription.
    expect(ran('FROM "public"."Message"')).toBe(1);
  });

  it.each(endingNames)('runs none of the membership checks still queued for it when the client %s', async (ending) => {
    // The first event's check waits for the lock; the others queue up behind it.
    const ran = await endWhileHeldUp(ending, 'ChatMember');
    expect(ran('"ChatMember"')).toBe(1);
    expect(ran('FROM "public"."Message"')).toBe(0);
  });
});

/** Sends a message through the HTTP server (unlike yoga.fetch, so that stop() sees the request). */
function sendOverHttp(url: string, sender: TestUser, chatId: string, text: string) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${sender.accessToken}` },
    body: JSON.stringify({
      query: `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }`,
      variables: { input: { chatId, kind: 'TEXT', text } },
    }),
  });
}

interface StoppableApp {
  app: App;
  url: string;
  users: [TestUser, TestUser];
  /** Stops the app; resolves with how long that took, in milliseconds. */
  stop(): Promise<number>;
}

/** Runs `test` on a listening app of its own (push off) with two users, and stops the app after it unless `test` did. */
async function withStoppableApp(env: Record<string, string>, options: Parameters<typeof startTestApp>[1], test: (s: StoppableApp) => Promise<void>) {
  const app = await startTestApp({ DATABASE_URL: scratch.url, PUSH_ENABLED: 'false', ...env }, options);
  let stopped: Promise<void> | undefined;
  try {
    const { url } = await app.start();
    const users = await Promise.all([registerUser(app), registerUser(app)]);
    const stop = async () => {
      const started = performance.now();
      await (stopped = app.stop());
      return performance.now() - started;
    };
    await test({ app, url, users, stop });
  } finally {
    await (stopped ?? app.stop());
  }
}

describe('stop()', () => {
  const modes: Array<{ bus: string; env: Record<string, string> }> = [
    { bus: 'in-process', env: {} },
    { bus: 'Redis', env: { REDIS_URL } },
  ];

  it.each(modes)(
    '($bus) lets a request and subscription executions under way finish before the database closes, logging no error',
    async ({ env }) => {
      const { logs, logger } = capturedLogs();
      const consoleErrors = vi.spyOn(console, 'error');
      // Named, so the connections this app leaves behind can be counted.
      const applicationName = `kocmoc-stop-${randomUUID().slice(0, 8)}`;
      const databaseUrl = new URL(scratch.url);
      databaseUrl.searchParams.set('application_name', applicationName);
      const prefix = `kocmoc-test:${randomUUID()}:`;
      // Limits on: RATE_LIMITS=off would log its warning.
      const app = await startTestApp(
        { DATABASE_URL: databaseUrl.toString(), RATE_LIMITS: 'on', ...env },
        { logger, channelPrefix: prefix, presence: { keyPrefix: prefix }, rateLimitKeyPrefix: prefix },
      );
      let lock: Awaited<ReturnType<typeof lockTable>> | undefined;
      let stopped: Promise<void> | undefined;
      try {
        const { url } = await app.start();
        const users = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
        const [alice] = users as [TestUser, ...TestUser[]];
        const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Shutdown', memberIds: users.slice(1).map((u) => u.id) });
        const sent = [];
        for (let i = 0; i < EVENTS; i++) sent.push(await sendText(app, users[i % users.length]!, chatId, `message ${i}`));

        const connections = users.map((user) => connect(url, user.accessToken));
        for (const connection of connections) {
          subscribe(connection, MESSAGE_EVENTS, {});
          subscribe(connection, CHAT_EVENTS);
          subscribe(connection, TYPING, { chatId });
          subscribe(connection, PRESENCE);
        }
        await Promise.all(connections.map((connection) => connection.connected));
        await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(EVENTS));

        lock = await lockTable('Message');
        // A burst every subscriber executes: the executions wait for the lock, and so does a send.
        for (const message of sent) await app.services.events.message(chatId, 'EDITED', message);
        await waitsForLock('FROM "public"."Message"');
        const response = sendOverHttp(url, alice, chatId, 'in flight at shutdown');
        await waitsForLock(SEND_STATEMENT);

        stopped = app.stop();
        // Sockets close at once; the request and the executions are let finish.
        const closeCodes = await Promise.all(connections.map((connection) => connection.closed));
        await lock.release();
        await stopped;

        expect(closeCodes).toEqual(connections.map(() => 1001));
        const sentInFlight = await response;
        expect(sentInFlight.status).toBe(200);
        expect(((await sentInFlight.json()) as { data: { sendMessage: { id: string } } }).data.sendMessage.id).toEqual(expect.any(String));
        // Not even a warning: nothing ran into a queue, pool or connection already closed.
        expect(logs.filter((entry) => (entry.level as number) >= 40)).toEqual([]);
        expect(JSON.stringify(logs)).not.toContain('pool after calling end');
        expect(consoleErrors).not.toHaveBeenCalled();
        // Nothing reopened a connection after the pool ended.
        await vi.waitFor(async () => {
          const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [applicationName]);
          expect(rows[0].n).toBe(0);
        });
        if (!env.REDIS_URL) {
          // In-process presence reports everyone offline at stop and saves when they were last seen.
          const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "User" WHERE id = ANY($1) AND "lastSeenAt" IS NOT NULL`, [users.map((u) => u.id)]);
          expect(rows[0].n).toBe(users.length);
        }
      } finally {
        consoleErrors.mockRestore();
        await lock?.release();
        await (stopped ?? app.stop());
      }
    },
  );

  it('cuts off a WebSocket client that does not answer the close frame rather than waiting for it', () =>
    withStoppableApp({}, {}, async ({ url, users: [alice, bob], stop }) => {
      const silent = await unresponsiveClient(url, alice.accessToken);
      const attentive = connect(url, bob.accessToken);
      await attentive.connected;

      // ws on its own waits 30 s for the close handshake; stop() allows 1 s of its budget for it.
      expect(await stop()).toBeLessThan(3_000);
      expect(await attentive.closed).toBe(1001);
      // The silent one was sent the close frame too before its connection was cut.
      expect(await silent.resume()).toBe(1001);
    }), 45_000);

  it('keeps to SHUTDOWN_TIMEOUT when a request does not finish, and warns about it', async () => {
    const { logs, logger } = capturedLogs();
    await withStoppableApp({ SHUTDOWN_TIMEOUT: '2s' }, { logger }, async ({ app, url, users: [alice, bob], stop }) => {
      const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
      const lock = await lockTable('Message');
      try {
        const response = sendOverHttp(url, alice, chatId, 'held up past the shutdown budget').catch((error: unknown) => error);
        await waitsForLock(SEND_STATEMENT);

        const elapsed = await stop();
        // It waited for the request (four fifths of the budget), then gave up on it.
        expect(elapsed).toBeGreaterThan(1_500);
        expect(elapsed).toBeLessThan(2_500);
        expect(logs.filter((entry) => entry.level === 40).map((entry) => entry.msg)).toContain('stopping while requests or subscription work still run');
        // Its connection was cut.
        expect(await response).toBeInstanceOf(Error);
      } finally {
        await lock.release();
      }
    });
  });

  it('ends subscriptions over HTTP event streams with UNAVAILABLE and a complete event rather than cutting them off', () =>
    withStoppableApp({}, {}, async ({ app, url, users: [alice, bob], stop }) => {
      const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${bob.accessToken}` },
        body: JSON.stringify({ query: TYPING, variables: { chatId } }),
      });
      expect(response.headers.get('content-type')).toContain('text/event-stream');
      const body = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let received = '';
      const readUntil = async (done: (text: string) => boolean) => {
        while (!done(received)) {
          const chunk = await body.read();
          if (chunk.done) return;
          received += chunk.value;
        }
      };
      await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBeDefined());
      await gql(app, START_TYPING, { chatId, isTyping: true }, { token: alice.accessToken });
      await readUntil((text) => text.includes('event: next'));

      await stop();
      await readUntil(() => false);
      // Ended by the server, not cut off with its connection once the drain ran out, after an
      // error that tells the client to resubscribe (elsewhere), so the end is not taken for "no more events".
      expect(received).toMatch(/event: next\ndata: \{"errors":\[\{"message":"The server is shutting down[^"]*","extensions":\{"code":"UNAVAILABLE","retryAfterSeconds":1\}\}\]\}\n\nevent: complete\n/);
    }));
});
