// Delivery through real faults: a Redis of our own that is killed and restarted, API instances in
// child processes killed with SIGKILL, a database that refuses connections. The outages would
// stall other test files, so this file runs on a database and a Redis of its own.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { createChat, registerUser, scratchDatabaseUrl, sendText, startTestApp } from './support/helpers.ts';
import { startRedisServer, type RedisServer } from './support/faults.ts';
import { MESSAGE_EVENTS } from './support/operations.ts';
import { openConnections, subscribe } from './support/ws-helpers.ts';

const scratch = scratchDatabaseUrl('kocmoc_faults');
let redis: RedisServer;

beforeAll(async () => {
  await ensureDatabase(scratch.url);
  await applyMigrations({ databaseUrl: scratch.url });
  redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.kill();
  await scratch.drop();
});

describe('a Redis outage', () => {
  const sockets = openConnections();
  let app: App;
  let url: string;
  beforeAll(async () => {
    app = await startTestApp({ DATABASE_URL: scratch.url, REDIS_URL: redis.url, PUSH_ENABLED: 'false' });
    url = (await app.start()).url;
  });
  afterAll(async () => {
    await sockets.closeAll();
    await app?.stop();
  });

  it('delivers a message published while the bus was disconnected, with none after it, within a second of the bus coming back', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const subscription = subscribe(sockets.connect(url, bob.accessToken), MESSAGE_EVENTS, { chatId });
    await vi.waitFor(() => expect(app.services.chatFeeds.lastSeq(chatId)).toBe(0));
    await sendText(app, alice, chatId, 'before');
    expect((await subscription.next()).data.messageEvents.seq).toBe(1);

    let reconnectedAt = 0;
    app.services.events.bus.onReconnect(() => (reconnectedAt = Date.now()));
    await redis.kill();
    // Stored; its event is lost (publishing gives up while Redis is down), and nothing follows it.
    const sent = await sendText(app, alice, chatId, 'published into the outage');
    expect(await subscription.nothingWithin(300)).toBe(true);
    await redis.start();

    const delivered = (await subscription.next(10_000)).data.messageEvents;
    const deliveredAt = Date.now();
    expect(delivered).toMatchObject({ seq: 2, message: { id: sent.id, text: 'published into the outage' } });
    expect(reconnectedAt).toBeGreaterThan(0);
    expect(deliveredAt - reconnectedAt).toBeLessThan(1_000);
    expect(await subscription.nothingWithin(200)).toBe(true);
  });
});
