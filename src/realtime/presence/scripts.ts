// The presence store's Lua scripts (key layout: redis-store.ts). Scripts read the clock with TIME
// so instances with skewed clocks agree. Keys of users and instances are built inside the
// scripts, so this needs a single Redis (not Cluster).
import type { Redis } from 'ioredis';

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

/**
 * Command names on the client, prefixed because the client may be shared with other code that
 * defines its own commands.
 */
const SCRIPTS = {
  kocmocPresenceSetCount: { numberOfKeys: 5, lua: SET_COUNT },
  kocmocPresenceSettle: { numberOfKeys: 2, lua: SETTLE },
  kocmocPresenceTick: { numberOfKeys: 3, lua: TICK },
  kocmocPresenceLeave: { numberOfKeys: 3, lua: LEAVE },
} as const;

/** A flat Lua list of pairs: {userId, number, userId, number, ...}. */
export type FlatPairs = Array<string | number>;

/** The scripts, typed by what they take (keys in the order above) and return. */
export interface PresenceCommands {
  setCount(
    keys: readonly [user: string, online: string, pending: string, instances: string, instanceUsers: string],
    instanceId: string,
    userId: string,
    count: number,
    max: number,
  ): Promise<[accepted: number, connections: number, cameOnline: number, offlinePending: number, registered: number]>;
  settle(
    keys: readonly [online: string, pending: string],
    userPrefix: string,
    graceMs: number,
    userIds: readonly string[],
  ): Promise<[offline: FlatPairs, waits: FlatPairs]>;
  tick(
    keys: readonly [instances: string, online: string, pending: string],
    instanceId: string,
    userPrefix: string,
    instanceUsersPrefix: string,
    timeoutMs: number,
    graceMs: number,
    batch: number,
  ): Promise<[registered: number, offline: FlatPairs, settled: number]>;
  leave(
    keys: readonly [instances: string, online: string, pending: string],
    instanceId: string,
    userPrefix: string,
    instanceUsersPrefix: string,
  ): Promise<unknown>;
}

type Run = (...args: Array<string | number>) => Promise<unknown>;

/** One set of commands per client: defining them again would make ioredis resend every source. */
const defined = new WeakMap<Redis, PresenceCommands>();

/**
 * Defines the scripts on this client (once) with `defineCommand`, which runs them by SHA and
 * sends the source when Redis lacks it (first use on a connection, Redis restarted).
 */
export function presenceCommands(redis: Redis): PresenceCommands {
  const known = defined.get(redis);
  if (known) return known;
  const command = (name: keyof typeof SCRIPTS): Run => {
    redis.defineCommand(name, SCRIPTS[name]);
    // defineCommand adds the method at run time; ioredis's types cannot know it.
    const run = (redis as unknown as Record<typeof name, Run>)[name];
    return (...args) => run.apply(redis, args);
  };
  const setCount = command('kocmocPresenceSetCount');
  const settle = command('kocmocPresenceSettle');
  const tick = command('kocmocPresenceTick');
  const leave = command('kocmocPresenceLeave');
  const commands: PresenceCommands = {
    setCount: (keys, ...args) => setCount(...keys, ...args) as ReturnType<PresenceCommands['setCount']>,
    settle: (keys, userPrefix, graceMs, userIds) =>
      settle(...keys, userPrefix, graceMs, ...userIds) as ReturnType<PresenceCommands['settle']>,
    tick: (keys, ...args) => tick(...keys, ...args) as ReturnType<PresenceCommands['tick']>,
    leave: (keys, ...args) => leave(...keys, ...args),
  };
  defined.set(redis, commands);
  return commands;
}
