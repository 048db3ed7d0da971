// Who is online, across server instances. A user is ONLINE while they have at least one live
// WebSocket connection on any instance. When the last one closes they stay ONLINE for a grace
// period (so flapping connections produce no events) and are then reported OFFLINE, with
// `lastSeenAt` written to their row. Each transition is reported once, by one instance.
//
// With Redis, every state change is one Lua script, so transitions are decided atomically:
//   <prefix>presence:user:<userId>              hash   instanceId -> live connections there
//   <prefix>presence:online                     set    users last reported ONLINE
//   <prefix>presence:pending-offline            zset   userId -> last seen (ms): at 0 connections, in grace
//   <prefix>presence:instances                  zset   instanceId -> last heartbeat (ms, Redis clock)
//   <prefix>presence:instance-users:<instance>  set    users with connections on that instance
// Each instance writes only its own field of a user's hash, and always the absolute count it
// knows locally, so any write heals an earlier failed one. Every heartbeat, every instance also
// sweeps instances silent for `instanceTimeoutMs` and reports users whose grace has run out; a
// grace period therefore ends even if the instance that started it died.
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.ts';
import { createLogger, type Logger } from '../logger.ts';

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

export interface PresenceTracker {
  /** Counts a new live connection of the user on this instance, unless they already have the maximum. */
  connect(userId: string): Promise<{ accepted: boolean; connections: number }>;
  /** A connection counted by `connect` ended, cleanly or not. Extra calls are ignored. */
  disconnect(userId: string): Promise<void>;
  /**
   * Which of these users are ONLINE as last reported through `onChange`: they have a live
   * connection somewhere, or lost their last one less than `offlineGraceMs` ago. Matching the
   * reported state keeps what a query shows consistent with the events that follow it.
   */
  onlineUserIds(userIds: readonly string[]): Promise<Set<string>>;
  /** Starts heartbeats and the sweeper (Redis). Call before accepting connections. */
  start(): Promise<void>;
  /** Drops this instance's connections (their users go offline after the grace unless connected elsewhere) and clears timers. */
  stop(): Promise<void>;
}

/** What a store reports after setting this instance's connection count of one user. */
interface CountResult {
  /** False when the new count would exceed the limit; nothing was written. */
  accepted: boolean;
  /** The user's connections across all instances, after the write. */
  connections: number;
  /** The user went from OFFLINE to ONLINE: report it. */
  cameOnline: boolean;
  /** The user has no connection left and is in the grace period. */
  offlinePending: boolean;
  /** False when this instance was missing from the registry (swept as dead): re-assert all counts. */
  registered: boolean;
}

interface Offline {
  userId: string;
  lastSeenMs: number;
}

interface SettleResult {
  offline: Offline[];
  /** Users still in their grace period, with how long is left. */
  waits: Array<{ userId: string; ms: number }>;
}

/** Shared presence state: Redis for a cluster, a few maps for one process. */
interface PresenceStore {
  /** Sets this instance's connection count of a user; `max` 0 means no limit (disconnects, resyncs). */
  setCount(userId: string, count: number, max: number): Promise<CountResult>;
  /** Reports those of these users (or, with null, of all users) whose grace has run out. */
  settle(userIds: readonly string[] | null, graceMs: number): Promise<SettleResult>;
  /** Heartbeat, sweep of dead instances and settling of due users, at once. */
  tick(graceMs: number, timeoutMs: number): Promise<{ registered: boolean; offline: Offline[]; more: boolean }>;
  online(userIds: readonly string[]): Promise<Set<string>>;
  /** Removes this instance's connections; returns users to report offline at once (in-process store only). */
  leave(): Promise<Offline[]>;
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
    ? createRedisStore(options.redis, options.keyPrefix ?? 'kocmoc:', options.instanceId ?? randomUUID())
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

    async onlineUserIds(userIds) {
      const unique = [...new Set(userIds)];
      return unique.length === 0 ? new Set() : store.online(unique);
    },

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

/** Users per lastSeenAt UPDATE: two array parameters, whatever the count, so one prepared statement. */
const LAST_SEEN_BATCH_SIZE = 1_000;

/** Writes each user's lastSeenAt, unless their row already has a later one. */
async function writeLastSeen(prisma: PrismaClient, batch: ReadonlyArray<readonly [string, Date]>) {
  // Sorted, so concurrent batches (from other instances) lock shared rows in the same order.
  const sorted = [...batch].sort(([a], [b]) => (a < b ? -1 : 1)); // ids are unique in a batch
  const userIds = sorted.map(([userId]) => userId);
  const times = sorted.map(([, lastSeenAt]) => lastSeenAt);
  // The column is timestamp(3) holding UTC, as Prisma writes it; the adapter sends Dates as UTC
  // without a zone, so casting to timestamp(3) involves no session time zone. The condition
  // never moves lastSeenAt backwards if two reports' writes land out of order.
  await prisma.$executeRaw`
    UPDATE "User" u SET "lastSeenAt" = v."at"
    FROM unnest(${userIds}::text[], ${times}::timestamp(3)[]) AS v("id", "at")
    WHERE u."id" = v."id" AND (u."lastSeenAt" IS NULL OR u."lastSeenAt" < v."at")`;
}

// ---------------------------------------------------------------------------------------------
// In-process store: one instance, so no heartbeats; the tracker's grace timers settle users.

function createMemoryStore(): PresenceStore {
  const connections = new Map<string, number>();
  const online = new Set<string>();
  /** userId -> when their last connection ended (ms). */
  const pending = new Map<string, number>();

  function settleOne(userId: string, graceMs: number, now: number, result: SettleResult) {
    const lastSeenMs = pending.get(userId);
    if (lastSeenMs === undefined) return;
    const left = lastSeenMs + graceMs - now;
    if (left > 0) return result.waits.push({ userId, ms: left });
    pending.delete(userId);
    if (online.delete(userId)) result.offline.push({ userId, lastSeenMs });
  }

  async function settle(userIds: readonly string[] | null, graceMs: number) {
    const result: SettleResult = { offline: [], waits: [] };
    const now = Date.now();
    for (const userId of userIds ?? [...pending.keys()]) settleOne(userId, graceMs, now, result);
    return result;
  }

  return {
    settle,
    async setCount(userId, count, max) {
      const mine = connections.get(userId) ?? 0;
      if (max > 0 && count > mine && count > max) {
        return { accepted: false, connections: mine, cameOnline: false, offlinePending: false, registered: true };
      }
      let cameOnline = false;
      let offlinePending = false;
      if (count > 0) {
        connections.set(userId, count);
        pending.delete(userId);
        cameOnline = !online.has(userId);
        online.add(userId);
      } else {
        connections.delete(userId);
        if (mine > 0 && online.has(userId)) {
          pending.set(userId, Date.now());
          offlinePending = true;
        }
      }
      return { accepted: true, connections: count, cameOnline, offlinePending, registered: true };
    },
    async tick(graceMs) {
      const { offline } = await settle(null, graceMs);
      return { registered: true, offline, more: false };
    },
    async online(userIds) {
      return new Set(userIds.filter((userId) => online.has(userId)));
    },
    async leave() {
      // No other instance will ever end these users' grace: report them offline now.
      const now = Date.now();
      const offline = [...online].map((userId) => ({ userId, lastSeenMs: connections.has(userId) ? now : (pending.get(userId) ?? now) }));
      connections.clear();
      online.clear();
      pending.clear();
      return offline;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis store. Scripts read the clock with TIME so instances with skewed clocks agree. Keys of
// users and instances are built inside the scripts, so this needs a single Redis (not Cluster).

const LUA_PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function total(key)
  local sum = 0
  for _, v in ipairs(redis.call('HVALS', key)) do sum = sum + tonumber(v) end
  return sum
end
-- Drops every connection of an instance; users left with none enter their grace, counted from seen_ms.
local function drop_instance(instances, online, pending, user_prefix, instance_users_prefix, id, seen_ms)
  local users_key = instance_users_prefix .. id
  for _, user in ipairs(redis.call('SMEMBERS', users_key)) do
    local key = user_prefix .. user
    redis.call('HDEL', key, id)
    if total(key) == 0 and redis.call('SISMEMBER', online, user) == 1 then
      redis.call('ZADD', pending, seen_ms, user)
    end
  end
  redis.call('DEL', users_key)
  redis.call('ZREM', instances, id)
end
-- Reports users whose grace is over: remove from pending and from online (only once: SREM tells).
local function settle_user(online, pending, user_prefix, user, grace, now, offline, waits)
  local seen = redis.call('ZSCORE', pending, user)
  if not seen then return end
  seen = tonumber(seen)
  if total(user_prefix .. user) > 0 then
    redis.call('ZREM', pending, user)
  elseif seen + grace > now then
    table.insert(waits, user)
    table.insert(waits, seen + grace - now)
  else
    redis.call('ZREM', pending, user)
    if redis.call('SREM', online, user) == 1 then
      table.insert(offline, user)
      table.insert(offline, seen)
    end
  end
end
`;

// KEYS: user hash, online, pending, instances, this instance's users.
// ARGV: instanceId, userId, count, max (0: no limit).
// Returns {accepted, connections, cameOnline, offlinePending, registered}.
const SET_COUNT = `${LUA_PRELUDE}
local id, user, count, max = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local registered = 1
if not redis.call('ZSCORE', KEYS[4], id) then
  registered = 0
  redis.call('ZADD', KEYS[4], now_ms(), id)
end
local mine = tonumber(redis.call('HGET', KEYS[1], id) or '0')
local others = total(KEYS[1]) - mine
if max > 0 and count > mine and others + count > max then
  return {0, others + mine, 0, 0, registered}
end
if count > 0 then
  redis.call('HSET', KEYS[1], id, count)
  redis.call('SADD', KEYS[5], user)
  redis.call('ZREM', KEYS[3], user)
  return {1, others + count, redis.call('SADD', KEYS[2], user), 0, registered}
end
redis.call('HDEL', KEYS[1], id)
redis.call('SREM', KEYS[5], user)
if mine > 0 and others == 0 and redis.call('SISMEMBER', KEYS[2], user) == 1 then
  redis.call('ZADD', KEYS[3], now_ms(), user)
  return {1, 0, 0, 1, registered}
end
return {1, others, 0, 0, registered}
`;

// KEYS: online, pending. ARGV: user prefix, graceMs, userIds...
// Returns {{userId, lastSeenMs, ...}, {userId, msLeft, ...}}.
const SETTLE = `${LUA_PRELUDE}
local now, grace = now_ms(), tonumber(ARGV[2])
local offline, waits = {}, {}
for i = 3, #ARGV do settle_user(KEYS[1], KEYS[2], ARGV[1], ARGV[i], grace, now, offline, waits) end
return {offline, waits}
`;

/** Users whose grace has ended settled by one script run: Redis runs nothing else meanwhile. */
const SETTLE_BATCH = 500;

// KEYS: instances, online, pending. ARGV: instanceId, user prefix, instance-users prefix, timeoutMs, graceMs, batch.
// Returns {registered, {userId, lastSeenMs, ...}, number of users settled}.
const TICK = `${LUA_PRELUDE}
local now, timeout, grace = now_ms(), tonumber(ARGV[4]), tonumber(ARGV[5])
local registered = redis.call('ZSCORE', KEYS[1], ARGV[1]) and 1 or 0
redis.call('ZADD', KEYS[1], now, ARGV[1])
-- A dead instance's users were last seen at its last heartbeat.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - timeout, 'WITHSCORES', 'LIMIT', 0, 10)
for i = 1, #dead, 2 do
  drop_instance(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], dead[i], tonumber(dead[i + 1]))
end
local offline, waits = {}, {}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - grace, 'LIMIT', 0, tonumber(ARGV[6]))
for _, user in ipairs(due) do settle_user(KEYS[2], KEYS[3], ARGV[2], user, grace, now, offline, waits) end
return {registered, offline, #due}
`;

// KEYS: instances, online, pending. ARGV: instanceId, user prefix, instance-users prefix.
const LEAVE = `${LUA_PRELUDE}
drop_instance(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3], ARGV[1], now_ms())
return 1
`;

function createRedisStore(redis: Redis, keyPrefix: string, instanceId: string): PresenceStore {
  const prefix = `${keyPrefix}presence:`;
  const userPrefix = `${prefix}user:`;
  const instanceUsersPrefix = `${prefix}instance-users:`;
  const onlineKey = `${prefix}online`;
  const pendingKey = `${prefix}pending-offline`;
  const instancesKey = `${prefix}instances`;
  const setCount = luaScript(redis, SET_COUNT);
  const settle = luaScript(redis, SETTLE);
  const tick = luaScript(redis, TICK);
  const leave = luaScript(redis, LEAVE);

  return {
    async setCount(userId, count, max) {
      const keys = [userPrefix + userId, onlineKey, pendingKey, instancesKey, instanceUsersPrefix + instanceId];
      const [accepted, connections, cameOnline, offlinePending, registered] = (await setCount(keys, [instanceId, userId, count, max])) as number[];
      return {
        accepted: accepted === 1,
        connections: connections ?? 0,
        cameOnline: cameOnline === 1,
        offlinePending: offlinePending === 1,
        registered: registered === 1,
      };
    },
    async settle(userIds, graceMs) {
      const ids = userIds ?? (await redis.zrange(pendingKey, 0, -1));
      if (ids.length === 0) return { offline: [], waits: [] };
      const [offline, waits] = (await settle([onlineKey, pendingKey], [userPrefix, graceMs, ...ids])) as [unknown[], unknown[]];
      return {
        offline: pairs(offline).map(([userId, lastSeenMs]) => ({ userId, lastSeenMs })),
        waits: pairs(waits).map(([userId, ms]) => ({ userId, ms })),
      };
    },
    async tick(graceMs, timeoutMs) {
      const [registered, offline, settled] = (await tick(
        [instancesKey, onlineKey, pendingKey],
        [instanceId, userPrefix, instanceUsersPrefix, timeoutMs, graceMs, SETTLE_BATCH],
      )) as [number, unknown[], number];
      return {
        registered: registered === 1,
        offline: pairs(offline).map(([userId, lastSeenMs]) => ({ userId, lastSeenMs })),
        more: settled >= SETTLE_BATCH,
      };
    },
    async online(userIds) {
      const flags = await redis.smismember(onlineKey, ...userIds);
      return new Set(userIds.filter((_, i) => flags[i] === 1));
    },
    async leave() {
      await leave([instancesKey, onlineKey, pendingKey], [instanceId, userPrefix, instanceUsersPrefix]);
      return [];
    },
  };
}

/** [a, 1, b, 2] -> [[a, 1], [b, 2]], as Lua returns flat lists. */
function pairs(flat: unknown[]): Array<[string, number]> {
  const result: Array<[string, number]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) result.push([String(flat[i]), Number(flat[i + 1])]);
  return result;
}

/** Runs a script by its SHA, sending the source only when Redis lacks it (first use, restart). */
function luaScript(redis: Redis, source: string) {
  const sha = createHash('sha1').update(source).digest('hex');
  return async (keys: string[], args: Array<string | number>): Promise<unknown> => {
    try {
      return await redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return redis.eval(source, keys.length, ...keys, ...args);
    }
  };
}
