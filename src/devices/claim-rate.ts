// How often one user may fetch another's pre-key bundles: each fetch claims a one-time pre-key of
// every device, so without a limit anyone could drain them (Signal limits this per pair too). A
// fixed window per (claimer, target): in Redis when REDIS_URL is set, so every instance counts
// together, else in this process.
// TODO(#13): switch to the shared rate limiter once issue #13 lands; checkBundleClaimRate is the
// one caller, and its contract (RATE_LIMITED with retryAfterSeconds) stays.
import type { Redis } from 'ioredis';
import { rateLimited } from '../errors.ts';

export interface BundleClaimLimits {
  /** Fetches allowed per (claimer, target) and window. */
  limit: number;
  windowMs: number;
}

export interface BundleClaimLimiter {
  /** Counts one fetch; returns how long to wait (ms) when it is over the limit, else 0. */
  take(claimerId: string, targetId: string): Promise<number>;
}

export interface BundleClaimLimiterOptions extends BundleClaimLimits {
  redis?: Redis;
  /** Prefix of the Redis keys (tests isolate themselves with it). Default `kocmoc:`. */
  keyPrefix?: string;
  /** Windows kept in memory at most (the oldest dropped first). Default 100,000. */
  maxEntries?: number;
}

// One round trip: count, and start the window's expiry with its first fetch.
const TAKE_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}`;

export function createBundleClaimLimiter({ redis, keyPrefix = 'kocmoc:', limit, windowMs, maxEntries = 100_000 }: BundleClaimLimiterOptions): BundleClaimLimiter {
  if (redis) {
    return {
      async take(claimerId, targetId) {
        const key = `${keyPrefix}bundle-claims:${claimerId}:${targetId}`;
        const [count, ttl] = (await redis.eval(TAKE_SCRIPT, 1, key, windowMs)) as [number, number];
        return count > limit ? Math.max(ttl, 1) : 0;
      },
    };
  }
  const windows = new Map<string, { count: number; endsAt: number }>();
  return {
    async take(claimerId, targetId) {
      const key = `${claimerId}:${targetId}`;
      const now = Date.now();
      let window = windows.get(key);
      if (!window || window.endsAt <= now) {
        windows.delete(key);
        if (windows.size >= maxEntries) windows.delete(windows.keys().next().value!);
        window = { count: 0, endsAt: now + windowMs };
        windows.set(key, window);
      }
      window.count += 1;
      return window.count > limit ? window.endsAt - now : 0;
    },
  };
}

/** Counts one bundle fetch of `targetId`'s devices by `claimerId`; RATE_LIMITED (with retryAfterSeconds) beyond the limit. */
export async function checkBundleClaimRate(services: { bundleClaims: BundleClaimLimiter }, claimerId: string, targetId: string): Promise<void> {
  const waitMs = await services.bundleClaims.take(claimerId, targetId);
  if (waitMs > 0) {
    throw rateLimited("Too many pre-key bundle requests for this user's devices. Try again later.", Math.max(1, Math.ceil(waitMs / 1000)));
  }
}
