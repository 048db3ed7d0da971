// Delivery through real faults: a Redis of our own that is killed and restarted, API instances in
// child processes killed with SIGKILL, a database that refuses connections. The outages would
// stall other test files, so this file runs on a database and a Redis of its own.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { createChat, registerUser, scratchDatabaseUrl, sendText, startTestApp } from './support/helpers.ts';
import { runDeliveryScenario } from './support/delivery-scenario.ts';
import { apiInstance, databaseOutages, startRedisServer, type ApiInstance, type DatabaseOutage, type RedisServer } from './support/faults.ts';
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

describe('two instances through faults', () => {
  const GAP_TIMEOUT_MS = 1_500;
  let first: App;
  let second: ApiInstance | undefined;
  let outage: DatabaseOutage | undefined;
  afterAll(async () => {
    await second?.close();
    await outage?.close();
    await first?.stop();
  });

  it('deliver every message to every resuming subscriber once and in order, completing no subscription, through a killed instance, a Redis restart, a PostgreSQL outage and a gap fill that fails', async () => {
    const env = { DATABASE_URL: scratch.url, REDIS_URL: redis.url, PUSH_ENABLED: 'false', FEED_GAP_TIMEOUT_MS: String(GAP_TIMEOUT_MS) };
    first = await startTestApp(env);
    const url = (await first.start()).url;
    const { config } = first.services;
    second = await apiInstance({
      ...env,
      JWT_SECRET: config.auth.jwtSecret,
      MESSAGE_ENCRYPTION_KEY: config.messageEncryption.keys[config.messageEncryption.currentKeyId]!.toString('base64'),
    });
    outage = await databaseOutages(scratch.url);
    const chats = [];
    for (let i = 0; i < 3; i++) {
      const members = await Promise.all(Array.from({ length: 4 }, () => registerUser(first)));
      const id = await createChat(first, members[0]!, { kind: 'GROUP', title: `Faults ${i}`, memberIds: members.slice(1).map((m) => m.id) });
      chats.push({ id, members: members.map((member) => ({ id: member.id, token: member.accessToken })) });
    }
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const restartOutage = outage;
    const report = await runDeliveryScenario({
      first: { app: first, url },
      second,
      redis,
      databaseFault: { name: 'PostgreSQL connections ended and refused for 1 s', run: async () => {
        await restartOutage.begin();
        await sleep(1_000);
        await restartOutage.end();
      } },
      outage,
      gapTimeoutMs: GAP_TIMEOUT_MS,
      chats,
      sendersPerChat: 2,
      senderPauseMs: 20,
      until: { rounds: 1 },
      settleMs: 3_000,
      dropEveryMs: 2_000,
      drainTimeoutMs: 15_000,
      log: process.env.DELIVERY_LOG ? (line) => console.log(line) : undefined,
    });
    if (process.env.DELIVERY_LOG) console.log(JSON.stringify({ ...report, phases: report.phases.map((p) => ({ name: p.name, deliveries: p.deliveries })) }));

    expect(report).toMatchObject({ lost: 0, duplicated: 0, outOfOrder: 0, completedByServer: 0, mismatchedRetries: 0 });
    expect(report.delivered).toBe(report.expectedDeliveries);
    // A few thousand on a quiet machine; fewer when other work shares its cores.
    expect(report.acknowledged).toBeGreaterThan(200);
    // Each message stored once, however often its send was retried.
    expect(report.stored).toBe(report.acknowledged + report.gapMessages);
    // The faults did strike: sockets cut by the killed instance, and the gap fill's subscriptions ended with UNAVAILABLE.
    expect(report.lostSockets).toBeGreaterThan(0);
    expect(report.gapFailures).toBeGreaterThan(0);
    expect(report.drops).toBeGreaterThan(0);
  }, 120_000);
});
