// Maintenance mode switches every instance at once, so this file runs on a database of its own
// (other test files keep mutating meanwhile).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { codeOf, createChat, gql, registerUser, scratchDatabaseUrl, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';
import { CHAT_EVENTS, LOGOUT, UPDATE_CHAT } from './support/operations.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
const REDIS_URL = testRedisUrl();
const prefix = `kocmoc-test:${randomUUID()}:`;
const scratch = scratchDatabaseUrl('kocmoc_maintenance');
const databaseUrl = scratch.url;

const start = (env: Record<string, string> = {}) =>
  startTestApp({ DATABASE_URL: databaseUrl, ADMIN_TOKEN, REDIS_URL, ...env }, { channelPrefix: prefix, presence: { keyPrefix: prefix } });

let a: App;
let b: App;
let user: TestUser;

beforeAll(async () => {
  await ensureDatabase(databaseUrl);
  await applyMigrations({ databaseUrl });
  [a, b] = await Promise.all([start(), start()]);
  user = await registerUser(a);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await scratch.drop();
});

const SET = `mutation ($on: Boolean!, $m: String) { setMaintenanceMode(enabled: $on, message: $m) { enabled message updatedAt } }`;
const admin = { headers: { 'x-admin-token': ADMIN_TOKEN } };

describe('maintenance mode', () => {
  it('needs the admin token, compared exactly', async () => {
    expect(codeOf(await gql(a, SET, { on: true }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(a, SET, { on: true }, { headers: { 'x-admin-token': `${ADMIN_TOKEN}x` } }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(a, `{ maintenance { enabled } }`, {}, { token: user.accessToken }))).toBe('FORBIDDEN');
    expect((await gql(a, `{ maintenance { enabled } }`, {}, admin)).data.maintenance.enabled).toBe(false);
  });

  it('is disabled entirely without ADMIN_TOKEN', async () => {
    const plain = await startTestApp({ DATABASE_URL: databaseUrl });
    try {
      const result = await gql(plain, SET, { on: true }, admin);
      expect(codeOf(result)).toBe('FORBIDDEN');
      expect(result.errors?.[0]?.message).toMatch(/ADMIN_TOKEN/);
    } finally {
      await plain.stop();
    }
  });

  it('refuses mutations on every instance while on, keeps queries and subscriptions, and survives a restart', async () => {
    const chatId = await createChat(a, user, { kind: 'GROUP', title: 'Before', memberIds: [] });
    const { url } = await b.start();
    const connection = connect(url, user.accessToken);
    const sub = subscribe(connection, CHAT_EVENTS);
    await settle();

    const on = await gql(a, SET, { on: true, m: 'Upgrading the database' }, admin);
    expect(on.data.setMaintenanceMode).toMatchObject({ enabled: true, message: 'Upgrading the database' });

    // Instance B refuses at once (the change travels through Redis), as a 503 with Retry-After.
    const refused = await gql(b, UPDATE_CHAT, { chatId, input: { title: 'During' } }, { token: user.accessToken, headers: { accept: 'application/json' } });
    expect(codeOf(refused)).toBe('MAINTENANCE');
    expect(refused.errors?.[0]?.message).toBe('Upgrading the database');
    expect(refused.response.status).toBe(503);
    expect(refused.response.headers.get('retry-after')).toBe('60');
    expect(codeOf(await gql(a, `mutation { register(input: { email: "m@example.com", username: "mmm", password: "password 123" }) { accessToken } }`))).toBe('MAINTENANCE');

    // Queries, subscriptions and readiness keep working, and say so.
    expect((await gql(b, `{ me { id } }`, {}, { token: user.accessToken })).data.me.id).toBe(user.id);
    expect(sub.results.filter((r) => r.errors)).toHaveLength(0);
    const ready = await b.yoga.fetch('http://kocmoc.test/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, maintenance: { enabled: true, message: 'Upgrading the database' } });

    // A fresh instance (a restart) finds it still on.
    const restarted = await start();
    try {
      expect(codeOf(await gql(restarted, LOGOUT, {}, { token: user.accessToken }))).toBe('MAINTENANCE');
    } finally {
      await restarted.stop();
    }

    const off = await gql(b, SET, { on: false }, admin);
    expect(off.data.setMaintenanceMode.enabled).toBe(false);
    // Instance A hears of it through Redis a few milliseconds after B answered: allow it a moment, no more.
    let after = await gql(a, UPDATE_CHAT, { chatId, input: { title: 'After' } }, { token: user.accessToken });
    for (let i = 0; i < 20 && codeOf(after) === 'MAINTENANCE'; i++) {
      await settle(25);
      after = await gql(a, UPDATE_CHAT, { chatId, input: { title: 'After' } }, { token: user.accessToken });
    }
    expect(after.errors, JSON.stringify(after.errors)).toBeUndefined();
    expect(after.data.updateChat.title).toBe('After');
    expect((await sub.next()).data.chatEvents.type).toBe('UPDATED');
    await connection.dispose();
  });
});
