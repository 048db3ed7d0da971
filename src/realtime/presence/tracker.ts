// Who is online, across server instances. A user is ONLINE while they have at least one live
// WebSocket connection on any instance. When the last one closes they stay ONLINE for a grace
// period (so flapping connections produce no events) and are then reported OFFLINE, with
// `lastSeenAt` written to their row. Each transition is reported once, by one instance.
//
// State lives in a store: in this process (memory-store.ts) or in Redis (redis-store.ts), which
// instances share.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../../generated/prisma/client.ts';
import { createLogger, type Logger } from '../../logger.ts';
import { LAST_SEEN_BATCH_SIZE, writeLastSeen } from '../../users/last-seen.ts';
import { createMemoryStore } from './memory-store.ts';
import type { PresenceReader } from './reader.ts';
import { createRedisStore, DEFAULT_KEY_PREFIX } from './redis-store.ts';
import { onlineAmong, type CountResult, type Offline } from './store.ts';

export interface PresenceChange {
  userId: string;
  online: boolean;
  /** When the user's last connection ended; null when they came online. */
  lastSeenAt: Date | null;
}

export interface PresenceTrackerOptions {
  /** Shared by all instances. Default undefined: state lives in this process (single instance only). */
  redis?: Redis;
  /** Receives `lastSeenAt` of users who went offline. */
  prisma: PrismaClient;
  /**
   * Called once per real transition, cluster-wide, on the instance that decided it; publish it to
   * every instance from here. OFFLINE is reported before its `lastSeenAt` reaches the database.
   */
  onChange: (change: PresenceChange) => void;
  /** Names this process in Redis. Default: a random UUID. */
  instanceId?: string;
  /** Prefix of every Redis key, so deployments (and tests) can share a Redis. Default `kocmoc:`. */
  keyPrefix?: string;
  /** How long a user with no connection left stays ONLINE, so a quick reconnect is no transition. Default 5000. */
  offlineGraceMs?: number;
  /** How often this instance proves it is alive and sweeps dead ones (Redis only). Default 5000. */
  heartbeatMs?: number;
  /** After this long without a heartbeat an instance is presumed dead and its connections dropped. Default 15000. */
  instanceTimeoutMs?: number;
  /** Live connections one user may hold across all instances; more are refused. Default 20. */
  maxConnectionsPerUser?: number;
  /** Where background failures (Redis down, database write failed) are logged. Default: silent. */
  logger?: Logger;
}

/** Also a `PresenceReader`: `onlineUserIds` answers from the same state. */
export interface PresenceTracker extends PresenceReader {
  /** Counts a new live connection of the user on this instance, unless they already have the maximum. */
  connect(userId: string): Promise<{ accepted: boolean; connections: number }>;
  /** A connection counted by `connect` ended, cleanly or not. Extra calls are ignored. */
  disconnect(userId: string): Promise<void>;
  /** Starts heartbeats and the sweeper (Redis). Call before accepting connections. */
  start(): Promise<void>;
  /** Drops this instance's connections (their users go offline after the grace unless connected elsewhere) and clears timers. */
  stop(): Promise<void>;
}

export function createPresenceTracker(options: PresenceTrackerOptions): PresenceTracker {
  const {
    prisma,
    onChange,
    offlineGraceMs: graceMs = 5_000,
    heartbeatMs = 5_000,
    instanceTimeoutMs = 15_000,
    maxConnectionsPerUser = 20,
    logger = createLogger('silent'),
  } = options;
  if (instanceTimeoutMs <= heartbeatMs) {
    throw new RangeError('instanceTimeoutMs must be longer than heartbeatMs, or live instances are swept as dead.');
  }
  const store = options.redis
    ? createRedisStore(options.redis, options.keyPrefix ?? DEFAULT_KEY_PREFIX, options.instanceId ?? randomUUID())
    : createMemoryStore();

  /** This instance's live connections per user: the truth its Redis field is set to. */
  const local = new Map<string, number>();
  /** Users whose last write failed, so Redis may disagree with `local`; the next tick rewrites them. */
  const dirty = new Set<string>();
  const graceTimers = new Map<string, NodeJS.Timeout>();
  // One user's writes from this instance run one at a time, so absolute counts land in order.
  const chains = new Map<string, Promise<unknown>>();
  /** Settles and database writes still running, which stop() waits for. */
  const background = new Set<Promise<unknown>>();
  /** lastSeenAt values reported but not yet sent to the database: userId -> the latest one. */
  const unsaved = new Map<string, Date>();
  /** The loop sending `unsaved`, while it runs (tracked, so stop() waits for it). */
  let saving: Promise<void> | undefined;
  let tickTimer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let started = false;
  let stopped = false;

  function track(promise: Promise<unknown>) {
    const tracked = promise.finally(() => background.delete(tracked));
    background.add(tracked);
  }

  function serial<T>(userId: string, task: () => Promise<T>): Promise<T> {
    const run = (chains.get(userId) ?? Promise.resolve()).then(task);
    const done = run.then(noop, noop);
    chains.set(userId, done);
    void done.then(() => {
      if (chains.get(userId) === done) chains.delete(userId);
    });
    return run;
  }

  function report(change: PresenceChange) {
    try {
      onChange(change);
    } catch (error) {
      logger.error({ err: error, userId: change.userId }, 'presence onChange failed');
    }
  }

  function reportOffline({ userId, lastSeenMs }: Offline) {
    const lastSeenAt = new Date(lastSeenMs);
    report({ userId, online: false, lastSeenAt });
    saveLastSeen(userId, lastSeenAt);
  }

  function saveLastSeen(userId: string, lastSeenAt: Date) {
    const queued = unsaved.get(userId);
    if (!queued || queued < lastSeenAt) unsaved.set(userId, lastSeenAt);
    if (!saving) track((saving = drainUnsaved()));
  }

  // One statement per batch of users instead of one per user: at shutdown, or when a tick reports
  // hundreds of users, per-row UPDATEs took seconds. One batch at a time, so a busy database
  // makes later reports wait and coalesce into the next statement rather than pile up.
  async function drainUnsaved() {
    try {
      // Reports often come many at once (a tick, stop()): let this turn of the event loop add theirs.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (unsaved.size > 0) {
        const batch: Array<[string, Date]> = [];
        for (const entry of unsaved) {
          batch.push(entry);
          if (batch.length === LAST_SEEN_BATCH_SIZE) break;
        }
        for (const [userId] of batch) unsaved.delete(userId);
        try {
          await writeLastSeen(prisma, batch);
        } catch (error) {
          logger.error({ err: error, users: batch.length, userIds: batch.slice(0, 10).map(([userId]) => userId) }, 'presence could not write lastSeenAt');
        }
      }
    } finally {
      saving = undefined;
    }
  }

  function scheduleSettle(userId: string, delayMs: number) {
    clearTimeout(graceTimers.get(userId));
    const timer = setTimeout(() => {
      graceTimers.delete(userId);
      track(settle([userId]));
    }, delayMs);
    timer.unref();
    graceTimers.set(userId, timer);
  }

  function cancelSettle(userId: string) {
    clearTimeout(graceTimers.get(userId));
    graceTimers.delete(userId);
  }

  async function settle(userIds: readonly string[]) {
    try {
      const { offline, waits } = await store.settle(userIds, graceMs);
      offline.forEach(reportOffline);
      // Clocks differ a little between this process and Redis: wait out what is left.
      if (!stopped) for (const { userId, ms } of waits) scheduleSettle(userId, ms);
    } catch (error) {
      // Any instance's next tick settles the user instead.
      logger.warn({ err: error }, 'presence settle failed');
    }
  }

  /** Writes this instance's count of the user; call inside `serial(userId)`. */
  async function writeCount(userId: string, count: number, max: number): Promise<CountResult> {
    let result: CountResult;
    try {
      result = await store.setCount(userId, count, max);
    } catch (error) {
      // The write may or may not have landed; the next tick rewrites the local truth.
      dirty.add(userId);
      throw error;
    }
    if (result.accepted) {
      dirty.delete(userId);
      if (count > 0) local.set(userId, count);
      else local.delete(userId);
    }
    if (result.connections > 0) cancelSettle(userId);
    if (result.cameOnline) report({ userId, online: true, lastSeenAt: null });
    if (result.offlinePending && !stopped) scheduleSettle(userId, graceMs);
    // Not awaited: resync queues behind this very write.
    if (!result.registered) void resync(local.keys());
    return result;
  }

  /** Re-asserts this instance's counts, after failed writes or after being swept as dead. */
  async function resync(userIds: Iterable<string>) {
    await Promise.all(
      [...new Set(userIds)].map((userId) =>
        serial(userId, () => writeCount(userId, local.get(userId) ?? 0, 0)).catch((error: unknown) =>
          logger.warn({ err: error, userId }, 'presence resync failed'),
        ),
      ),
    );
  }

  async function tick() {
    let result = await store.tick(graceMs, instanceTimeoutMs);
    result.offline.forEach(reportOffline);
    await resync(result.registered ? [...dirty] : [...local.keys(), ...dirty]);
    // A stopped or dead instance leaves all its users due at once. Each tick settles a batch (one
    // short Redis script); the rest follow at once, not one batch per heartbeat.
    while (result.more && !stopped) {
      result = await store.tick(graceMs, instanceTimeoutMs);
      result.offline.forEach(reportOffline);
    }
  }

  function scheduleTick() {
    tickTimer = setTimeout(() => {
      ticking = tick()
        .catch((error: unknown) => logger.warn({ err: error }, 'presence heartbeat failed'))
        .finally(() => {
          ticking = undefined;
          if (!stopped) scheduleTick();
        });
    }, heartbeatMs);
    tickTimer.unref();
  }

  return {
    async connect(userId) {
      if (stopped) throw new Error('Presence tracker is stopped.');
      return serial(userId, async () => {
        const result = await writeCount(userId, (local.get(userId) ?? 0) + 1, maxConnectionsPerUser);
        return { accepted: result.accepted, connections: result.connections };
      });
    },

    async disconnect(userId) {
      if (stopped) return;
      await serial(userId, async () => {
        const count = local.get(userId) ?? 0;
        // A refused or already-ended connection was never counted here.
        if (count === 0) return;
        // The connection is gone whatever Redis answers.
        if (count > 1) local.set(userId, count - 1);
        else local.delete(userId);
        await writeCount(userId, count - 1, 0);
      });
    },

    onlineUserIds: (userIds) => onlineAmong(store, userIds),

    async start() {
      if (started || stopped) return;
      started = true;
      if (!options.redis) return; // In-process: grace timers are all there is.
      await tick();
      if (!stopped) scheduleTick();
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      clearTimeout(tickTimer);
      await ticking;
      for (const timer of graceTimers.values()) clearTimeout(timer);
      graceTimers.clear();
      // Writes may queue more writes (a resync), so wait until none is left.
      while (chains.size > 0) await Promise.all(chains.values());
      try {
        (await store.leave()).forEach(reportOffline);
      } catch (error) {
        // Other instances sweep this one once its heartbeat is overdue.
        logger.warn({ err: error }, 'presence could not remove this instance');
      }
      local.clear();
      dirty.clear();
      while (background.size > 0) await Promise.all(background);
    },
  };
}

function noop() {}
