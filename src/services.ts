// The composition root: every long-lived service is built here, once, with the same options for
// both processes. The API (server/app.ts) takes the whole set; the BullMQ worker process
// (worker-main.ts) takes the core it needs to run notification jobs.
import type { Cluster, Redis } from 'ioredis';
import type { Tracer } from '@opentelemetry/api';
import { createPasswordHasher, type PasswordHasher } from './auth/passwords.ts';
import { createSessionCache, type SessionCache } from './auth/session-cache.ts';
import { createTokenService, type TokenService } from './auth/tokens.ts';
import { createMaintenance, type Maintenance } from './admin/maintenance.ts';
import { createCallRuntime, type CallRuntime } from './calls/runtime.ts';
import { createWorkerPool, type WorkerPool } from './cpu/pool.ts';
import { createScheduledRunner, type ScheduledRunner } from './messages/scheduled-runner.ts';
import { createContentCipher, type ContentCipher } from './crypto/content-cipher.ts';
import { createPrisma } from './db/client.ts';
import { createReadRouting, type ReadRouting } from './db/replicas.ts';
import type { Config } from './env.ts';
import { createLocalDiskStorage } from './files/local-disk-storage.ts';
import type { FileStorage } from './files/storage.ts';
import { createUploadMemory, type UploadMemory } from './files/upload-memory.ts';
import type { PrismaClient } from './generated/prisma/client.ts';
import type { InFlight } from './in-flight.ts';
import { createLoginLimiter, type LoginLimiter } from './limits/login-limits.ts';
import { createRateLimits, type RateLimits } from './limits/rate-limits.ts';
import type { Logger } from './logger.ts';
import { createNotifications, type Notifications, type NotificationsOptions } from './notifications/notifications.ts';
import { createEventBus, type EventBus } from './realtime/bus.ts';
import { createClusterBus } from './realtime/cluster-bus.ts';
import { DEFAULT_KEY_PREFIX } from './realtime/presence/redis-store.ts';
import { connectRedis, isCluster, slotPrefix } from './redis/connection.ts';
import { createChatFeeds, type ChatFeeds } from './realtime/chat-feed.ts';
import { createEvents, type Events } from './realtime/events.ts';
import { createPresenceTracker, type PresenceTracker, type PresenceTrackerOptions } from './realtime/presence/tracker.ts';
import { createPresencePublisher } from './users/status.ts';

/** Long-lived services shared by every request (and by tests and workers). */
export interface Services {
  config: Config;
  prisma: PrismaClient;
  /** Read replicas (DATABASE_REPLICA_URLS) for lag-tolerant reads, with read-your-writes; the primary without them. */
  reads: ReadRouting;
  pool: WorkerPool;
  passwords: PasswordHasher;
  tokens: TokenService;
  /** Live sessions, briefly cached (cleared at once when a session ends). */
  sessions: SessionCache;
  /** Seals and opens message content at rest. */
  cipher: ContentCipher;
  /** Where uploaded files are kept (encrypted by src/files before they get here). */
  storage: FileStorage;
  /** Upload bytes held in memory by this process, within UPLOAD_MEMORY_BYTES. */
  uploadMemory: UploadMemory;
  /** Publishes what subscribers see (through Redis when configured). */
  events: Events;
  /** Each chat's events, ordered and shared by this instance's subscribers. */
  chatFeeds: ChatFeeds;
  /** Who has a live connection, across instances. */
  presence: PresenceTracker;
  /** Maintenance mode, shared by all instances. */
  maintenance: Maintenance;
  /** Push notifications: `messageSent()` hands new messages to the job queue, calls queue theirs; `checkEndpoint` vets push endpoints. */
  notifications: Pick<Notifications, 'messageSent' | 'checkEndpoint' | 'callRinging' | 'callAnsweredElsewhere' | 'callMissed'>;
  /** Per-user, per-session and per-address rate limits (shared through Redis when configured). */
  rateLimits: RateLimits;
  /** Failed-password counting and lockouts, for everything that checks a password. */
  loginLimits: LoginLimiter;
  /** Call deadlines (ringing, reconnecting) and signal ordering; app.ts starts its timers. */
  calls: CallRuntime;
  /** When scheduled messages run (BullMQ delayed jobs with Redis, timers without); app.ts starts it. */
  scheduledSends: ScheduledRunner;
  /** The shared Redis connection (REDIS_URL), for small stores such as persisted queries. */
  redis: Redis | undefined;
  logger: Logger;
}

export interface CoreServicesOptions {
  databaseUrl: string;
  /** Connections in this process's database pool. Default `config.database.poolSize` (DATABASE_POOL_SIZE). */
  databasePoolSize?: number;
  /** Worker threads of the CPU pool. Default `config.workers.threads`. */
  workerThreads?: number;
  /** Forwarded to Prisma; tests count queries with it. */
  onQuery?: (sql: string) => void;
  /** With tracing on (src/tracing/tracing.ts): SQL statements become spans. */
  tracer?: Tracer;
}

/** What every process needs: the database, the CPU pool, Redis (when configured) and the content cipher. */
export interface CoreServices extends Pick<Services, 'config' | 'logger' | 'prisma' | 'pool' | 'cipher'> {
  /** Commands (presence, job state); pub/sub has connections of its own (realtime/bus.ts). */
  redis: Redis | undefined;
  /** Closes Redis, the pool and the database connections. */
  close(): Promise<void>;
}

export function createCoreServices(config: Config, logger: Logger, options: CoreServicesOptions): CoreServices {
  const prisma = createPrisma(options.databaseUrl, {
    poolSize: options.databasePoolSize ?? config.database.poolSize,
    preparedStatements: config.database.preparedStatements,
    onQuery: options.onQuery,
    tracer: options.tracer,
  });
  const pool = createWorkerPool({ ...config.workers, threads: options.workerThreads ?? config.workers.threads });
  const redis = config.redisUrl ? connectRedis(config.redisUrl, { maxRetriesPerRequest: 3 }) : undefined;
  redis?.on('error', (error) => logger.warn({ err: error }, 'redis error'));
  return {
    config,
    logger,
    prisma,
    pool,
    redis,
    cipher: createContentCipher({ keyring: config.messageEncryption, pool }),
    async close() {
      await redis?.quit().catch(() => {});
      await pool.close();
      await prisma.$disconnect();
    },
  };
}

export interface ServicesOptions extends CoreServicesOptions {
  /** Requests and subscription work still running: chat feeds count their database reads in it. */
  inFlight: InFlight;
  /** Presence timings and limits (tests shorten the grace period). */
  presence?: Pick<PresenceTrackerOptions, 'offlineGraceMs' | 'heartbeatMs' | 'instanceTimeoutMs' | 'maxConnectionsPerUser' | 'keyPrefix'>;
  /** Prefix of Redis pub/sub channels and of the pre-key bundle limiter's keys (tests isolate themselves with it). Default `kocmoc:`. */
  channelPrefix?: string;
  /** Push notifications: TLS options and a host resolver for push services (tests trust their local push service, and resolve without DNS). */
  notifications?: Pick<NotificationsOptions, 'pushTls' | 'resolveHost' | 'relayIntervalMs'>;
  /** Prefix of the rate limits' Redis keys (tests isolate themselves with it). Default `kocmoc:rl:`. */
  rateLimitKeyPrefix?: string;
}

/** The API's services and their lifecycle. */
export interface ServiceSet {
  services: Services;
  /** The whole notifications service (tests wait for its queue with `whenIdle`). */
  notifications: Notifications;
  /** Starts what runs in the background: presence heartbeats, listeners, the outbox relay. */
  start(): Promise<void>;
  /** Stops all of it and closes every connection; call once no request uses them any more. */
  stop(): Promise<void>;
}

export function createServices(config: Config, logger: Logger, options: ServicesOptions): ServiceSet {
  const core = createCoreServices(config, logger, options);
  const { prisma, pool, redis, cipher } = core;
  const passwords = createPasswordHasher(pool, config.auth.passwordHash);
  const bus = createBus(config, options.channelPrefix, logger);
  const events = createEvents(bus, logger);
  const calls = createCallRuntime({ config, prisma, logger, tracer: options.tracer });
  const publishPresence = createPresencePublisher(
    prisma,
    (change) => events.presence({ userId: change.userId, online: change.online, lastSeenAt: change.lastSeenAt?.toISOString() ?? null }),
    logger,
  );
  const presence = createPresenceTracker({
    redis,
    prisma,
    logger,
    ...options.presence,
    // The presence scripts touch many keys: on a cluster they all hash to one slot.
    keyPrefix: presenceKeyPrefix(config, options.presence?.keyPrefix),
    onChange: (change) => {
      publishPresence.report(change);
      // Calls follow connections, whatever status the user shows.
      if (!change.online) calls.userOffline(change.userId);
    },
  });
  const maintenance = createMaintenance({ prisma, bus });
  const sessions = createSessionCache({ prisma, bus });
  const notifications = createNotifications({ config, prisma, cipher, presence, logger, tracer: options.tracer, ...options.notifications });
  const limiterStore = { redis, keyPrefix: options.rateLimitKeyPrefix ?? 'kocmoc:rl:' };
  const { replicaUrls, replicaStickyMs: stickyMs, poolSize, preparedStatements } = config.database;
  const reads = createReadRouting({
    primary: prisma,
    replicaUrls,
    stickyMs,
    poolSize,
    preparedStatements,
    redis,
    onRedisError: (error) => logger.warn({ err: error }, 'read-your-writes mark in Redis failed; reading from the primary'),
  });

  const services: Services = {
    config,
    prisma,
    reads,
    pool,
    passwords,
    tokens: createTokenService(config.auth),
    sessions,
    cipher,
    storage: createLocalDiskStorage({ root: config.files.uploadDir }),
    uploadMemory: createUploadMemory({ limitBytes: config.files.uploadMemoryBytes }),
    events,
    chatFeeds: createChatFeeds({ bus, prisma, logger, inFlight: options.inFlight, gapTimeoutMs: config.realtime.feedGapTimeoutMs }),
    presence,
    maintenance,
    notifications,
    rateLimits: createRateLimits(config, limiterStore),
    loginLimits: createLoginLimiter(config, limiterStore),
    calls,
    scheduledSends: createScheduledRunner({ redisUrl: config.redisUrl, prefix: config.jobs.queuePrefix, logger, tracer: options.tracer }),
    redis,
    logger,
  };

  return {
    services,
    notifications,
    async start() {
      if (!config.limits.rateLimitsEnabled) logger.warn('RATE_LIMITS=off: every rate limit is off (document limits stay on); for load tests and benches only');
      logger.info(bus.distributed ? 'events and presence go through Redis' : 'no REDIS_URL: events and presence stay in this process (one instance)');
      await passwords.warmUp();
      await presence.start();
      await maintenance.start();
      await sessions.start();
      if (config.push.enabled) notifications.start();
      logger.info(
        !config.push.enabled
          ? 'push notifications are off (PUSH_ENABLED=false)'
          : notifications.queue.distributed
            ? 'push notifications are queued in Redis: run `npm run worker` to deliver them'
            : 'no REDIS_URL: push notifications are processed in this process (same job code as the worker)',
      );
    },
    async stop() {
      maintenance.stop();
      sessions.stop();
      await services.calls.stop();
      await services.scheduledSends.stop();
      await notifications.stop();
      await presence.stop();
      await publishPresence.drained();
      await bus.close();
      await reads.close();
      await core.close();
    },
  };
}

/** Sharded pub/sub on a Redis Cluster, classic pub/sub on one Redis, or in-process. */
function createBus(config: Config, channelPrefix: string | undefined, logger: Logger): EventBus {
  if (config.redisUrl && isCluster(config.redisUrl)) {
    return createClusterBus({ cluster: connectRedis(config.redisUrl, { maxRetriesPerRequest: 3 }) as unknown as Cluster, channelPrefix, logger });
  }
  return createEventBus({ redisUrl: config.redisUrl, channelPrefix, logger });
}

/** The presence keys' prefix, in one hash slot on a cluster; the worker's reader uses the same. */
export function presenceKeyPrefix(config: Config, keyPrefix = DEFAULT_KEY_PREFIX): string {
  return slotPrefix(config.redisUrl, keyPrefix);
}
