// The one place that reads the environment. Everything else receives a `Config`.
import { createECDH, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { duration, flag, optionalString, port } from './env-fields.ts';
import { httpSettings, toHttpConfig } from './http-settings.ts';
import { databaseSettings, databaseSettingsIssues, toDatabasePoolConfig } from './db/settings.ts';
import { limitSettings, toLimitsConfig } from './limits/settings.ts';
import { searchSettings, toSearchConfig } from './messages/search-settings.ts';
import { clusterTarget } from './redis/connection.ts';
import { toTracingConfig, tracingSettings } from './tracing/settings.ts';
import { IMAGE_WORKING_COPIES, MULTIPART_OVERHEAD_BYTES, uploadPeakBytes } from './files/upload-sizes.ts';

const base64Key = z
  .string()
  .trim()
  .transform((value) => Buffer.from(value, 'base64'))
  .refine((key) => key.length === 32, 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)');

const schema = z.object({
  /** `development` (default), `test` or `production`. Production requires JWT_SECRET. */
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /** HTTP and WebSocket port. Default 4000; 0 picks a free port. */
  PORT: port(4000),
  /** Interface to listen on. Default 0.0.0.0. */
  HOST: z.string().default('0.0.0.0'),
  /**
   * Largest body of a GraphQL request that is not an upload (JSON, form-encoded), in bytes: each is
   * held whole while it is parsed. Default 1048576 (1 MiB); uploads have MAX_UPLOAD_BYTES.
   */
  MAX_REQUEST_BYTES: z.coerce.number().int().min(16 * 1024, 'must be at least 16384').default(1024 * 1024),
  /**
   * How long stopping on SIGTERM or SIGINT may take, in the API and in the worker: work still running
   * is given up after it. Keep it within the grace period after which the orchestrator kills the
   * process (Docker's default is 10 s, Kubernetes' 30 s). Default 10s.
   */
  SHUTDOWN_TIMEOUT: duration('10s'),
  /** PostgreSQL URL. Unset (and no PG_HOST): an embedded PostgreSQL under DATA_DIR. */
  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  /** Alternative to DATABASE_URL, libpq style. Used when PG_HOST is set. */
  PG_HOST: optionalString,
  PG_PORT: port(5432),
  PG_DATABASE: z.string().default('kocmoc'),
  PG_USER: z.string().default('postgres'),
  PG_PASSWORD: optionalString,
  /** `true` to require TLS to PostgreSQL. */
  PG_SSL: flag.default(false),
  /** DATABASE_DIRECT_URL, DATABASE_POOL_MODE (PgBouncer), DATABASE_POOL_SIZE: see src/db/settings.ts. */
  ...databaseSettings,
  /** Used by `npm test` instead of DATABASE_URL; the tests wipe this database. */
  TEST_DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  /** Port of the embedded PostgreSQL. Default 54329. */
  EMBEDDED_PG_PORT: port(54_329),
  /** Where development state lives: embedded database, generated secrets. Default ./.data */
  DATA_DIR: z.string().default('.data'),
  /** Redis URL. Unset: in-process pub/sub and jobs (single instance only). */
  REDIS_URL: optionalString.pipe(z.url({ protocol: /^rediss?$/ }).optional()),
  /** Instead of REDIS_URL: a Redis Cluster (>= 7), `host:port,host:port,...` (some of its nodes; the rest is discovered). */
  REDIS_CLUSTER_NODES: optionalString.pipe(z.string().regex(/^[^\s,:]+:\d+(,[^\s,:]+:\d+)*$/, 'expected host:port,host:port,...').optional()),
  /**
   * HS256 key for access tokens; refresh tokens are MACed with a key derived from it, so changing it
   * signs every device out. At least 32 characters. Required in production; generated under DATA_DIR otherwise.
   */
  JWT_SECRET: optionalString.pipe(z.string().min(32, 'must be at least 32 characters').optional()),
  /** Access token lifetime. Default 15m. */
  JWT_TTL: duration('15m'),
  /** Refresh token (device session) lifetime, pushed forward on every refresh. Default 30d. */
  REFRESH_TOKEN_TTL: duration('30d'),
  /** `iss` and `aud` claims of access tokens. */
  JWT_ISSUER: z.string().default('kocmoc'),
  JWT_AUDIENCE: z.string().default('kocmoc-api'),
  /**
   * AES-256-GCM key for message content at rest: 32 bytes, base64. Required in production;
   * generated under DATA_DIR otherwise. Its id (stored beside each ciphertext) is derived from it.
   */
  MESSAGE_ENCRYPTION_KEY: optionalString.pipe(base64Key.optional()),
  /** Earlier keys, comma-separated base64, still accepted for reading while data is re-encrypted. */
  MESSAGE_ENCRYPTION_OLD_KEYS: optionalString.transform((value, ctx) =>
    (value ?? '')
      .split(',')
      .map((key) => key.trim())
      .filter(Boolean)
      .map((key) => {
        const parsed = base64Key.safeParse(key);
        if (!parsed.success) ctx.addIssue({ code: 'custom', message: parsed.error.issues[0]!.message });
        return parsed.success ? parsed.data : Buffer.alloc(0);
      }),
  ),
  /**
   * VAPID key pair (RFC 8292) for Web Push, base64url as printed by `npx web-push generate-vapid-keys`,
   * and the contact the push services see (`mailto:` or `https:`). Required in production;
   * generated under DATA_DIR otherwise.
   */
  VAPID_PUBLIC_KEY: optionalString,
  VAPID_PRIVATE_KEY: optionalString,
  VAPID_SUBJECT: optionalString.pipe(z.string().regex(/^(mailto:|https:\/\/)/, 'must start with mailto: or https://').optional()),
  /** Search indexing and the re-index after a key rotation: see src/messages/search-settings.ts. */
  ...searchSettings,
  /** `false` turns push notifications off (no outbox rows, no jobs; VAPID keys then not required). Default true. */
  PUSH_ENABLED: flag.default(true),
  /** Allow push endpoints on loopback/private addresses (development and tests only). Default false. */
  PUSH_ALLOW_PRIVATE_ENDPOINTS: flag.default(false),
  /** How long a notification waits so a burst of messages becomes one. Default 2s. */
  PUSH_COLLAPSE_WINDOW: duration('2s'),
  /** Jobs one worker process runs at once. Default 16. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(16),
  /** How long a job may run before another worker takes it over (BullMQ lock). Default 30s. */
  JOB_LOCK_DURATION: duration('30s'),
  /** Prefix of the job queue's Redis keys. Default `kocmoc`. */
  JOB_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('kocmoc'),
  /** How long a typing signal lasts without a refresh. Default 6s. */
  TYPING_TTL: duration('6s'),
  /** Seconds a call rings before it ends MISSED. Default 45. */
  CALL_RING_SECONDS: z.coerce.number().positive().max(600).default(45),
  /** Seconds a device whose event stream dropped during a call has to come back before it leaves with FAILED. Default 20. */
  CALL_RECONNECT_SECONDS: z.coerce.number().positive().max(600).default(20),
  /**
   * STUN/TURN servers handed to call peers (`iceServers`), comma-separated `stun:`, `turn:` or
   * `turns:` URLs. Unset: none, and calls connect only peers that reach each other directly.
   */
  TURN_URLS: optionalString.transform((value, ctx) => {
    const urls = (value ?? '').split(',').map((url) => url.trim()).filter(Boolean);
    for (const url of urls) if (!/^(stun|turns?):[^\s]+$/.test(url)) ctx.addIssue({ code: 'custom', message: `not a stun:, turn: or turns: URL: "${url}"` });
    return urls;
  }),
  /** The TURN server's shared secret (coturn's `static-auth-secret`). Required with turn: URLs. */
  TURN_SECRET: optionalString,
  /** How long TURN credentials from `iceServers` work. Default 1h. */
  TURN_CREDENTIAL_TTL: duration('1h'),
  /**
   * How long, in milliseconds, a live chat feed keeps retrying to read positions it missed from the
   * database (holding later events meanwhile), and how long a subscription's reads retry, before its
   * subscriptions end with UNAVAILABLE (clients resubscribe from their last seq). A feed's read that
   * waits for a pooled connection while the database answers others starts its bound over (busy,
   * not out of reach: realtime/retry.ts). Default 5000.
   */
  FEED_GAP_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5_000),
  /** Enables admin mutations when set (sent as `x-admin-token`). */
  ADMIN_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** pino level. Default info (warn under test). */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  /** Worker threads for CPU-heavy tasks. Default: the number of cores. */
  WORKER_THREADS: z.coerce.number().int().min(1).max(256).optional(),
  /**
   * Nice value of the worker threads (Linux; ignored elsewhere). Above 0, the event loop gets a core
   * first when hashing keeps every core busy, so requests are read, refused or answered without
   * waiting behind argon2 (bench/RESULTS.md). 0 treats them alike. Default 10.
   */
  WORKER_NICE: z.coerce.number().int().min(0).max(19).default(10),
  /** How much queued hashing work (in milliseconds of CPU) the pool accepts before answering RATE_LIMITED. Default 2000. */
  WORK_QUEUE_MAX_MS: z.coerce.number().int().min(100).default(2_000),
  /**
   * argon2id memory in KiB and passes. Default 12288 KiB (12 MiB) and 3 passes: one of OWASP's five
   * equally strong settings. With every core hashing, the 12, 9 and 7 MiB rows verified 1.26–1.29×
   * as fast as 19 MiB × 2 on the 2-core bench machine (bench/RESULTS.md); 12 MiB is the one of them
   * with the most memory. Any pair at least as strong as one of OWASP's rows is accepted.
   */
  PASSWORD_HASH_MEMORY_KIB: z.coerce.number().int().min(7_168).max(4_194_304).default(12_288),
  /** See PASSWORD_HASH_MEMORY_KIB. Default 3. */
  PASSWORD_HASH_PASSES: z.coerce.number().int().min(1).max(64).default(3),
  /** Largest upload in bytes, enforced while the body streams in. Default 26214400 (25 MiB). */
  MAX_UPLOAD_BYTES: z.coerce.number().int().min(1).max(2_147_483_647, 'must fit Attachment.size (2 GiB - 1)').default(25 * 1024 * 1024),
  /**
   * Upload bytes this process holds in memory at once, over all uploads in progress: their request
   * bodies and an image's working copies. An upload that finds no room waits up to 2 s, then gets
   * RATE_LIMITED. At least what one largest upload needs (3 x MAX_UPLOAD_BYTES + 64 KiB). Default
   * 268435456 (256 MiB).
   */
  UPLOAD_MEMORY_BYTES: z.coerce.number().int().min(1).default(256 * 1024 * 1024),
  /** Where uploaded files are stored, encrypted. Default <DATA_DIR>/uploads. */
  UPLOAD_DIR: optionalString,
  /** Uploads no message uses (never sent, or their messages deleted), nobody has as profile picture and no pending scheduled message will send are deleted after this long. Default 24h. */
  UPLOAD_RETENTION: duration('24h'),
  /** How long a signed download link (Attachment.url, thumbnailUrl) works. Default 5m. */
  FILE_URL_TTL: duration('5m'),
  /** Document limits, rate limits, socket caps, TRUST_PROXY: see src/limits/settings.ts. */
  ...limitSettings,
  /** Introspection, GraphiQL, CORS_ORIGINS and /metrics: see src/http-settings.ts. */
  ...httpSettings,
  /** OpenTelemetry: see src/tracing/settings.ts. */
  ...tracingSettings,
  /**
   * How long an export of a user's data (exportMyData) can be downloaded, through its link or with the
   * user's token; the encrypted file is deleted after that. One export a day per user. Default 1h.
   */
  DATA_EXPORT_TTL: duration('1h'),
  /** End-to-end encrypted messages: a device's envelope is deleted after this long even if that device never read it. Default 30d. */
  ENCRYPTED_ENVELOPE_RETENTION: duration('30d'),
});

/**
 * OWASP's argon2id settings of equal strength (memory KiB, passes): more memory buys fewer passes.
 * https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
 */
export const OWASP_ARGON2ID_SETTINGS: ReadonlyArray<{ memoryKib: number; passes: number }> = [
  { memoryKib: 47_104, passes: 1 },
  { memoryKib: 19_456, passes: 2 },
  { memoryKib: 12_288, passes: 3 },
  { memoryKib: 9_216, passes: 4 },
  { memoryKib: 7_168, passes: 5 },
];

const validatedSchema = schema.superRefine((env, context) => {
  const uploadPeak = uploadPeakBytes(env.MAX_UPLOAD_BYTES);
  if (env.UPLOAD_MEMORY_BYTES < uploadPeak) {
    context.addIssue({
      code: 'custom',
      path: ['UPLOAD_MEMORY_BYTES'],
      message:
        `must be at least ${uploadPeak} (${IMAGE_WORKING_COPIES + 1} x MAX_UPLOAD_BYTES + ${MULTIPART_OVERHEAD_BYTES / 1024} KiB), what one upload of MAX_UPLOAD_BYTES holds at its peak: ` +
        `an image's request body, the copy the worker decodes and the stripped original; got ${env.UPLOAD_MEMORY_BYTES}`,
    });
  }
  const strongEnough = OWASP_ARGON2ID_SETTINGS.some(
    (row) => env.PASSWORD_HASH_MEMORY_KIB >= row.memoryKib && env.PASSWORD_HASH_PASSES >= row.passes,
  );
  if (!strongEnough) {
    context.addIssue({
      code: 'custom',
      path: ['PASSWORD_HASH_PASSES'],
      message: `${env.PASSWORD_HASH_PASSES} passes at ${env.PASSWORD_HASH_MEMORY_KIB} KiB is weaker than OWASP's minimum; use at least one of ${OWASP_ARGON2ID_SETTINGS.map((row) => `${row.memoryKib} KiB x ${row.passes}`).join(', ')}`,
    });
  }
});

export type Config = ReturnType<typeof toConfig>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Validates the environment once, with one line per bad variable.
 * `source` defaults to `process.env`; tests pass their own overrides.
 */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const parsed = validatedSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new ConfigError(`Invalid environment:\n${lines.join('\n')}`);
  }
  return toConfig(parsed.data);
}

/** For entry points: the config, or the list of bad variables on stderr and exit code 1. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}

function toConfig(env: z.infer<typeof schema>) {
  const dataDir = resolve(env.DATA_DIR);
  const production = env.NODE_ENV === 'production';
  const missing = [
    ...(production && !env.JWT_SECRET ? ['  JWT_SECRET: required when NODE_ENV=production'] : []),
    ...(production && env.PUSH_ENABLED && !(env.VAPID_PUBLIC_KEY && env.VAPID_PRIVATE_KEY && env.VAPID_SUBJECT)
      ? ['  VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY, VAPID_SUBJECT: required when NODE_ENV=production']
      : []),
    ...(production && !env.MESSAGE_ENCRYPTION_KEY ? ['  MESSAGE_ENCRYPTION_KEY: required when NODE_ENV=production'] : []),
    ...databaseSettingsIssues(env),
    ...(env.REDIS_URL && env.REDIS_CLUSTER_NODES ? ['  REDIS_CLUSTER_NODES: set either it or REDIS_URL, not both'] : []),
    ...(env.PERSISTED_OPERATIONS_ONLY && !env.PERSISTED_OPERATIONS_FILE ? ['  PERSISTED_OPERATIONS_FILE: required with PERSISTED_OPERATIONS_ONLY=true'] : []),
    ...(!env.TURN_SECRET && env.TURN_URLS.some((url) => url.startsWith('turn')) ? ['  TURN_SECRET: required with turn: URLs in TURN_URLS'] : []),
  ];
  if (missing.length > 0) throw new ConfigError(`Invalid environment:\n${missing.join('\n')}`);
  const messageKey =
    env.MESSAGE_ENCRYPTION_KEY ?? Buffer.from(persistentSecret(dataDir, 'message-key', () => randomBytes(32).toString('base64')), 'base64');
  return {
    env: env.NODE_ENV,
    http: { port: env.PORT, host: env.HOST, maxRequestBytes: env.MAX_REQUEST_BYTES },
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT,
    dataDir,
    database: {
      /** Undefined: start an embedded PostgreSQL. */
      url: env.DATABASE_URL ?? pgUrlFromParts(env),
      testUrl: env.TEST_DATABASE_URL,
      embeddedPort: env.EMBEDDED_PG_PORT,
      ...toDatabasePoolConfig(env),
    },
    /** Where Redis is: a redis:// URL, or a cluster's nodes (src/redis/connection.ts); undefined: none. */
    redisUrl: env.REDIS_CLUSTER_NODES ? clusterTarget(env.REDIS_CLUSTER_NODES) : env.REDIS_URL,
    auth: {
      jwtSecret: env.JWT_SECRET ?? persistentSecret(dataDir, 'jwt-secret', () => randomBytes(48).toString('base64url')),
      accessTokenTtlMs: env.JWT_TTL,
      refreshTokenTtlMs: env.REFRESH_TOKEN_TTL,
      issuer: env.JWT_ISSUER,
      audience: env.JWT_AUDIENCE,
      passwordHash: { memoryKib: env.PASSWORD_HASH_MEMORY_KIB, passes: env.PASSWORD_HASH_PASSES },
    },
    messageEncryption: keyringOf(messageKey, ...env.MESSAGE_ENCRYPTION_OLD_KEYS),
    search: toSearchConfig(env),
    realtime: { typingTtlMs: env.TYPING_TTL, feedGapTimeoutMs: env.FEED_GAP_TIMEOUT_MS },
    calls: {
      ringMs: Math.round(env.CALL_RING_SECONDS * 1000),
      reconnectMs: Math.round(env.CALL_RECONNECT_SECONDS * 1000),
      turn: { urls: env.TURN_URLS, secret: env.TURN_SECRET, credentialTtlMs: env.TURN_CREDENTIAL_TTL },
    },
    push: {
      enabled: env.PUSH_ENABLED,
      vapid: vapidKeys(env, dataDir),
      allowPrivateEndpoints: env.PUSH_ALLOW_PRIVATE_ENDPOINTS,
      collapseWindowMs: env.PUSH_COLLAPSE_WINDOW,
    },
    jobs: { concurrency: env.WORKER_CONCURRENCY, lockDurationMs: env.JOB_LOCK_DURATION, queuePrefix: env.JOB_QUEUE_PREFIX },
    adminToken: env.ADMIN_TOKEN,
    logLevel: env.LOG_LEVEL ?? (env.NODE_ENV === 'test' ? 'warn' : 'info'),
    workers: {
      threads: env.WORKER_THREADS ?? availableParallelism(),
      queueMaxMs: env.WORK_QUEUE_MAX_MS,
      nice: env.WORKER_NICE,
    },
    files: {
      maxUploadBytes: env.MAX_UPLOAD_BYTES,
      uploadMemoryBytes: env.UPLOAD_MEMORY_BYTES,
      uploadDir: resolve(env.UPLOAD_DIR ?? join(dataDir, 'uploads')),
      unusedRetentionMs: env.UPLOAD_RETENTION,
      urlTtlMs: env.FILE_URL_TTL,
      exportTtlMs: env.DATA_EXPORT_TTL,
    },
    limits: toLimitsConfig(env),
    exposure: toHttpConfig(env, production),
    tracing: toTracingConfig(env),
    e2e: {
      envelopeRetentionMs: env.ENCRYPTED_ENVELOPE_RETENTION,
    },
  };
}

function pgUrlFromParts(env: z.infer<typeof schema>): string | undefined {
  if (!env.PG_HOST) return undefined;
  const url = new URL('postgresql://localhost');
  url.hostname = env.PG_HOST;
  url.port = String(env.PG_PORT);
  url.pathname = `/${encodeURIComponent(env.PG_DATABASE)}`;
  url.username = encodeURIComponent(env.PG_USER);
  if (env.PG_PASSWORD) url.password = encodeURIComponent(env.PG_PASSWORD);
  if (env.PG_SSL) url.searchParams.set('sslmode', 'require');
  return url.toString();
}

/** The configured VAPID keys, or a pair generated once and kept under DATA_DIR. */
function vapidKeys(env: z.infer<typeof schema>, dataDir: string) {
  const subject = env.VAPID_SUBJECT ?? 'mailto:admin@localhost';
  if (env.VAPID_PUBLIC_KEY && env.VAPID_PRIVATE_KEY) return { publicKey: env.VAPID_PUBLIC_KEY, privateKey: env.VAPID_PRIVATE_KEY, subject };
  const pair = JSON.parse(
    persistentSecret(dataDir, 'vapid.json', () => {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      // A private key can have leading zero bytes, which getPrivateKey drops; VAPID wants all 32.
      const privateKey = ecdh.getPrivateKey();
      const padded = Buffer.concat([Buffer.alloc(32 - privateKey.length), privateKey]);
      return JSON.stringify({ publicKey: ecdh.getPublicKey('base64url'), privateKey: padded.toString('base64url') });
    }),
  ) as { publicKey: string; privateKey: string };
  return { ...pair, subject };
}

export interface Keyring {
  /** Id of the key new ciphertexts use. */
  currentKeyId: string;
  /** Every usable key by id: the current one and the old ones. */
  keys: Record<string, Buffer>;
}

/** Key ids are derived from the keys, so configuration cannot pair a key with the wrong id. */
export function keyIdOf(key: Uint8Array): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/** A keyring of `current` (sealing) and `old` keys (opening only), each under its derived id. */
export function keyringOf(current: Buffer, ...old: Buffer[]): Keyring {
  const keys: Record<string, Buffer> = {};
  for (const key of [...old, current]) keys[keyIdOf(key)] = key;
  return { currentKeyId: keyIdOf(current), keys };
}

/** Development convenience: a random secret kept under DATA_DIR so it survives restarts. */
function persistentSecret(dataDir: string, name: string, generate: () => string): string {
  const file = join(dataDir, name);
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(dataDir, { recursive: true });
    const secret = generate();
    // `wx` loses the race to a concurrent first start cleanly; then read the winner's secret.
    try {
      writeFileSync(file, secret, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}
