// Shared test plumbing: a real app on the test database, and a small GraphQL client over yoga.fetch.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Level } from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { buildApp, type App, type BuildAppOptions } from '../../src/server/app.ts';
import { dropDatabase, withDatabase } from '../../src/db/pg-admin.ts';
import { loadConfig } from '../../src/env.ts';
import { limitSettings } from '../../src/limits/settings.ts';
import { uuidv7 } from '../../src/ids.ts';
import { createEventBus } from '../../src/realtime/bus.ts';
import { createChatFeeds, type ChatFeedsOptions } from '../../src/realtime/chat-feed.ts';
import { sendWithoutEvent as sendMessageWithoutEvent } from './faults.ts';
import { CREATE_CHAT, REGISTER, SEND_MESSAGE } from './operations.ts';

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

/**
 * The BullMQ prefix of this test file's apps on Redis (modules load once per file): apps of one file
 * share their queues, as instances of one deployment do, but never take another file's jobs (a call
 * timer of another database, say) from the shared Redis.
 */
const FILE_QUEUE_PREFIX = `kocmoc-test-${randomUUID()}`;

export function testConfig(overrides: Record<string, string> = {}) {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: inject('databaseUrl'),
    PORT: '0',
    HOST: '127.0.0.1',
    JWT_SECRET: TEST_JWT_SECRET,
    WORKER_THREADS: '2',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    // The suite registers and signs in many users from one address; the limit tests turn them on.
    RATE_LIMITS: 'off',
    JOB_QUEUE_PREFIX: FILE_QUEUE_PREFIX,
    ...overrides,
  });
}

export async function startTestApp(
  overrides: Record<string, string> = {},
  options: Omit<BuildAppOptions, 'config'> = {},
): Promise<App> {
  return buildApp({ config: testConfig(overrides), ...options });
}

/**
 * An app listening on a free port whose presence keys and event channels have a prefix of their own
 * (so it shares Redis with other test files safely): for tests that open graphql-ws sockets.
 */
export async function startSocketTestApp(overrides: Record<string, string> = {}, options: Omit<BuildAppOptions, 'config'> = {}) {
  const prefix = `kocmoc-test:${randomUUID()}:`;
  const app = await startTestApp(overrides, { channelPrefix: prefix, ...options, presence: { keyPrefix: prefix, ...options.presence } });
  return { app, url: (await app.start()).url };
}

/** An app with an UPLOAD_DIR of its own, listening on a free port; `stop` removes the directory too. */
export async function startUploadTestApp(overrides: Record<string, string> = {}, options: Omit<BuildAppOptions, 'config'> = {}) {
  const uploadDir = mkdtempSync(join(tmpdir(), 'kocmoc-uploads-'));
  const app = await startTestApp({ UPLOAD_DIR: uploadDir, ...overrides }, options);
  const base = `http://127.0.0.1:${(await app.start()).port}`;
  const stop = async () => {
    await app.stop();
    rmSync(uploadDir, { recursive: true, force: true });
  };
  return { app, base, uploadDir, stop };
}

/**
 * Starts an app with an UPLOAD_DIR of its own before a test file's tests (`onStart` receives it) and
 * stops it, removing the directory, after them.
 */
export function useUploadTestApp(overrides: Record<string, string>, onStart: (app: App, base: string) => void) {
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const started = await startUploadTestApp(overrides);
    stop = started.stop;
    onStart(started.app, started.base);
  });
  afterAll(async () => {
    await stop?.();
  });
}

/**
 * Uploads one file as a GraphQL multipart request (operations, map, file) through yoga.fetch, and
 * answers the attachment's id (and `selection`).
 */
export async function uploadThroughFetch(app: App, token: string, bytes: Uint8Array, { kind = 'IMAGE', name = 'picture.png', selection = 'id' } = {}) {
  const form = new FormData();
  const query = `mutation ($file: File!, $kind: MessageKind) { uploadFile(file: $file, kind: $kind) { ${selection} } }`;
  form.set('operations', JSON.stringify({ query, variables: { file: null, kind } }));
  form.set('map', JSON.stringify({ 0: ['variables.file'] }));
  form.set('0', new Blob([bytes as Uint8Array<ArrayBuffer>]), name);
  const response = await app.yoga.fetch('http://kocmoc.test/graphql', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
  const body = (await response.json()) as GraphQLResponse<{ uploadFile: { id: string } & Record<string, any> }>;
  if (!body.data?.uploadFile) throw new Error(`upload failed: ${JSON.stringify(body.errors)}`);
  return body.data.uploadFile;
}

/** The path and query of a link the API handed out (links are absolute: PUBLIC_URL or the request's origin). */
export function pathOf(link: string): string {
  const url = new URL(link, 'http://kocmoc.test');
  return `${url.pathname}${url.search}`;
}

/** GET of a link or path of the API (a download link, say) through yoga.fetch. */
export const fetchPath = (app: App, link: string, headers: Record<string, string> = {}) => app.yoga.fetch(`http://kocmoc.test${pathOf(link)}`, { headers });

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

/**
 * Rate limits on, but only the ones named in `rates` (e.g. `{ RATE_LIMIT_PRE_KEY_BUNDLES: '5/1h' }`)
 * bite: every other RATE_LIMIT_* is far beyond what a test does. For tests of a limit that belongs
 * to a feature, whose other steps (registrations, logins, sends) must not be counted against them.
 */
export function onlyRateLimits(rates: Record<string, string>): Record<string, string> {
  const unlimited = Object.keys(limitSettings).filter((name) => name.startsWith('RATE_LIMIT_')).map((name) => [name, '1000000/1s']);
  return { RATE_LIMITS: 'on', ...Object.fromEntries(unlimited), ...rates };
}

/** Where the limit tests count, for describe.each: one instance's memory, and Redis shared by two instances. */
export const limitStores = () => [
  { store: 'memory', env: {} as Record<string, string>, instances: 1 },
  { store: 'Redis, two instances', env: { REDIS_URL: testRedisUrl() } as Record<string, string>, instances: 2 },
];

/** `instances` apps with rate limits on and Redis keys and channels of their own, listening on free ports. */
export async function startLimitApps(env: Record<string, string>, instances: number) {
  const prefix = `kocmoc-test:${randomBytes(8).toString('hex')}:`;
  const start = () => startTestApp({ RATE_LIMITS: 'on', ...env }, { rateLimitKeyPrefix: prefix, channelPrefix: prefix, presence: { keyPrefix: prefix } });
  const apps = await Promise.all(Array.from({ length: instances }, start));
  const listening = await Promise.all(apps.map((app) => app.start()));
  return { apps, urls: listening.map((started) => started.url), bases: listening.map((started) => `http://127.0.0.1:${started.port}`) };
}

/** A database beside the test database (for tests that must not share it), and how to drop it. */
export function scratchDatabaseUrl(name: string) {
  const url = withDatabase(inject('databaseUrl'), `${name}_${process.pid}`);
  return { url, drop: () => dropDatabase(url) };
}

export { unusedPort } from './ports.ts';
