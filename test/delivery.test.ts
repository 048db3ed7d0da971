// Delivery of live events when the database falters and when subscribers resume: real PostgreSQL
// and graphql-ws clients on a real port. The outages and table locks here would stall other test
// files, so this file runs on a database of its own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { codeOf, createChat, gql, registerUser, scratchDatabaseUrl, sendText, startTestApp } from './support/helpers.ts';
import { databaseOutages, type DatabaseOutage } from './support/faults.ts';
import { SEND_MESSAGE } from './support/operations.ts';

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
});
