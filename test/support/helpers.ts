// Shared test plumbing: a real app on the test database, and a small GraphQL client over yoga.fetch.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Level } from 'pino';
import { inject } from 'vitest';
import { buildApp, type App, type BuildAppOptions } from '../../src/server/app.ts';
import { dropDatabase, withDatabase } from '../../src/db/pg-admin.ts';
import { loadConfig } from '../../src/env.ts';
import { uuidv7 } from '../../src/ids.ts';
import { createEventBus } from '../../src/realtime/bus.ts';
import { createChatFeeds, type ChatFeedsOptions } from '../../src/realtime/chat-feed.ts';
import { sendWithoutEvent as sendMessageWithoutEvent } from './faults.ts';
import { CREATE_CHAT, REGISTER, SEND_MESSAGE } from './operations.ts';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export function testConfig(overrides: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: inject('databaseUrl'),
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_JWT_SECRET,
    WORKER_THREADS: '2',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    ...overrides,
  });
}

export async function startTestApp(
  overrides: Record<string, string> = {},
  options: Omit<BuildAppOptions, 'config'> = {},
): Promise<App> {
  return buildApp({ config: testConfig(overrides), ...options });
}

/** An app with an UPLOAD_DIR of its own, listening on a free port; `stop` removes the directory too. */
export async function startUploadTestApp(overrides: Record<string, string> = {}) {
  const uploadDir = mkdtempSync(join(tmpdir(), 'kocmoc-uploads-'));
  const app = await startTestApp({ UPLOAD_DIR: uploadDir, ...overrides });
  const base = `http://127.0.0.1:${(await app.start()).port}`;
  const stop = async () => {
    await app.stop();
    rmSync(uploadDir, { recursive: true, force: true });
  };
  return { app, base, uploadDir, stop };
}

export interface GraphQLResponse<T = any> {
  data?: T | null;
  errors?: Array<{ message: string; path?: string[]; extensions?: Record<string, any> }>;
}

export interface GqlOptions {
  token?: string;
  headers?: Record<string, string>;
}

/** Runs one operation in-process through yoga.fetch (the full HTTP pipeline, no socket). */
export async function gql<T = any>(
  app: App,
  query: string,
  variables: Record<string, unknown> = {},
  { token, headers = {} }: GqlOptions = {},
): Promise<GraphQLResponse<T> & { response: Response }> {
  const response = await app.yoga.fetch('http://kocmoc.test/graphql', {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GraphQLResponse<T>;
  return { ...body, response };
}

/** A logger whose entries (parsed JSON lines) are kept in `logs`, for asserting what was logged. */
export function capturedLogs(level: Level = 'debug') {
  const logs: Array<Record<string, any>> = [];
  const logger = pino(
    { level },
    new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
        done();
      },
    }),
  );
  return { logs, logger };
}

/** The `extensions.code` of the first error, for terse assertions. */
export const codeOf = (result: GraphQLResponse) => result.errors?.[0]?.extensions?.code;

export const uniqueName = (prefix = 'u') => `${prefix}_${randomBytes(5).toString('hex')}`;

export interface TestUser {
  id: string;
  username: string;
  email: string;
  password: string;
  accessToken: string;
  refreshToken: string;
}

export async function registerUser(app: App, overrides: Partial<{ username: string; displayName: string; password: string }> = {}): Promise<TestUser> {
  const username = overrides.username ?? uniqueName();
  const email = `${username}@example.com`;
  const password = overrides.password ?? 'correct horse battery staple';
  const result = await gql(app, REGISTER, {
    input: { email, username, password, displayName: overrides.displayName ?? `User ${username}` },
  });
  if (!result.data?.register) throw new Error(`register failed: ${JSON.stringify(result.errors)}`);
  const { accessToken, refreshToken, user } = result.data.register;
  return { id: user.id, username, email, password, accessToken, refreshToken };
}

/**
 * A session opened the way logins did before refresh tokens had generations (LEGACY): a
 * "RefreshToken" row holding the SHA-256 of an opaque token, after `spent` rotated ones. Returns
 * the tokens, spent and live.
 */
export async function createLegacySession(app: App, userId: string, spent = 0) {
  const { prisma, tokens } = app.services;
  const sessionId = uuidv7();
  const expiresAt = new Date(Date.now() + tokens.refreshTokenTtlMs);
  await prisma.$executeRaw`
    INSERT INTO "Session" ("id", "userId", "userAgent", "expiresAt") VALUES (${sessionId}, ${userId}, 'old client', ${expiresAt})`;
  const issued = Array.from({ length: spent + 1 }, () => randomBytes(32).toString('base64url'));
  await prisma.refreshToken.createMany({
    data: issued.map((token, index) => ({
      sessionId,
      tokenHash: createHash('sha256').update(token).digest('base64url'),
      rotatedAt: index < spent ? new Date() : null,
    })),
  });
  return { sessionId, spent: issued.slice(0, spent), live: issued.at(-1)! };
}

export async function createChat(
  app: App,
  owner: TestUser,
  input: { kind: 'DIRECT' | 'GROUP'; title?: string; memberIds: string[]; isPublic?: boolean },
): Promise<string> {
  const result = await gql(app, CREATE_CHAT, { input }, { token: owner.accessToken });
  if (!result.data?.createChat) throw new Error(`createChat failed: ${JSON.stringify(result.errors)}`);
  return result.data.createChat.id;
}

export async function sendText(app: App, sender: TestUser, chatId: string, text: string, extra: Record<string, unknown> = {}) {
  const result = await gql(app, SEND_MESSAGE, { input: { chatId, kind: 'TEXT', text, ...extra } }, { token: sender.accessToken });
  if (!result.data?.sendMessage) throw new Error(`sendMessage failed: ${JSON.stringify(result.errors)}`);
  return result.data.sendMessage as { id: string; seq: number; text: string };
}

/** As an instance that died between its commit and its publish: see faults.ts. */
export const sendWithoutEvent = (app: App, sender: TestUser, chatId: string, text: string, extra: { clientMessageId?: string } = {}) =>
  sendMessageWithoutEvent(app, sender.id, chatId, text, extra);

/** Chat feeds on `app`'s database behind a bus of their own: the app's sends never reach it, so the test decides what arrives and when. */
export function feedsOnOwnBus(app: App, options: Omit<ChatFeedsOptions, 'bus' | 'prisma' | 'logger'> = {}) {
  const { logger, prisma } = app.services;
  const bus = createEventBus({ logger });
  return { bus, feeds: createChatFeeds({ bus, prisma, logger, ...options }) };
}

/** The Redis for tests that need one (REDIS_URL, else the local default), as the global setup resolved it. */
export const testRedisUrl = () => inject('redisUrl');

/** A database beside the test database (for tests that must not share it), and how to drop it. */
export function scratchDatabaseUrl(name: string) {
  const url = withDatabase(inject('databaseUrl'), `${name}_${process.pid}`);
  return { url, drop: () => dropDatabase(url) };
}

export { unusedPort } from './ports.ts';
