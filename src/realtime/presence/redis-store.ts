// Presence state shared by all instances through Redis. Every state change is one Lua script
// (scripts.ts), so transitions are decided atomically:
//   <prefix>presence:user:<userId>              hash   instanceId -> live connections there
//   <prefix>presence:online                     set    users last reported ONLINE
//   <prefix>presence:pending-offline            zset   userId -> last seen (ms): at 0 connections, in grace
//   <prefix>presence:instances                  zset   instanceId -> last heartbeat (ms, Redis clock)
//   <prefix>presence:instance-users:<instance>  set    users with connections on that instance
// Each instance writes only its own field of a user's hash, and always the absolute count it
// knows locally, so any write heals an earlier failed one. Every heartbeat, every instance also
// sweeps instances silent for `instanceTimeoutMs` and reports users whose grace has run out; a
// grace period therefore ends even if the instance that started it died.
import type { Redis } from 'ioredis';
import { presenceCommands, type FlatPairs } from './scripts.ts';
import type { PresenceStore } from './store.ts';

/** Default prefix of every key, for the tracker and the reader alike. */
export const DEFAULT_KEY_PREFIX = 'kocmoc:';

/** Users whose grace has ended settled by one script run: Redis runs nothing else meanwhile. */
const SETTLE_BATCH = 500;

/** The keys above, under one deployment's prefix. */
export function presenceKeys(keyPrefix: string) {
  const prefix = `${keyPrefix}presence:`;
  return {
    userPrefix: `${prefix}user:`,
    instanceUsersPrefix: `${prefix}instance-users:`,
    online: `${prefix}online`,
    pending: `${prefix}pending-offline`,
    instances: `${prefix}instances`,
  };
}

/**
 * `PresenceStore.online` in Redis: the online set, which users leave only when their grace ends,
 * so a user in the grace period still counts (as the tracker reported no OFFLINE yet).
 */
export function redisOnline(redis: Redis, keys: Pick<ReturnType<typeof presenceKeys>, 'online'>): PresenceStore['online'] {
  return async (userIds) => {
    const flags = await redis.smismember(keys.online, ...userIds);
    return new Set(userIds.filter((_, i) => flags[i] === 1));
  };
}

export function createRedisStore(redis: Redis, keyPrefix: string, instanceId: string): PresenceStore {
  const keys = presenceKeys(keyPrefix);
  const scripts = presenceCommands(redis);
  const registry = [keys.instances, keys.online, keys.pending] as const;

  return {
    async setCount(userId, count, max) {
      const userKeys = [keys.userPrefix + userId, keys.online, keys.pending, keys.instances, keys.instanceUsersPrefix + instanceId] as const;
      const [accepted, connections, cameOnline, offlinePending, registered] = await scripts.setCount(userKeys, instanceId, userId, count, max);
      return {
        accepted: accepted === 1,
        connections: connections ?? 0,
        cameOnline: cameOnline === 1,
        offlinePending: offlinePending === 1,
        registered: registered === 1,
      };
    },
    async settle(userIds, graceMs) {
      const ids = userIds ?? (await redis.zrange(keys.pending, 0, -1));
      if (ids.length === 0) return { offline: [], waits: [] };
      const [offline, waits] = await scripts.settle([keys.online, keys.pending], keys.userPrefix, graceMs, ids);
      return {
        offline: pairs(offline).map(([userId, lastSeenMs]) => ({ userId, lastSeenMs })),
        waits: pairs(waits).map(([userId, ms]) => ({ userId, ms })),
      };
    },
    async tick(graceMs, timeoutMs) {
      const [registered, offline, settled] = await scripts.tick(
        registry,
        instanceId,
        keys.userPrefix,
        keys.instanceUsersPrefix,
        timeoutMs,
        graceMs,
        SETTLE_BATCH,
      );
      return {
        registered: registered === 1,
        offline: pairs(offline).map(([userId, lastSeenMs]) => ({ userId, lastSeenMs })),
        more: settled >= SETTLE_BATCH,
      };
    },
    online: redisOnline(redis, keys),
    async leave() {
      await scripts.leave(registry, instanceId, keys.userPrefix, keys.instanceUsersPrefix);
      return [];
    },
  };
}

/** [a, 1, b, 2] -> [[a, 1], [b, 2]], as Lua returns flat lists. */
function pairs(flat: FlatPairs): Array<[string, number]> {
  const result: Array<[string, number]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) result.push([String(flat[i]), Number(flat[i + 1])]);
  return result;
}
