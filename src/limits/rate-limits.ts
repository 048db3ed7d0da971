// Rate limits, counted by rate-limiter-flexible: in Redis when REDIS_URL is set (shared by every
// instance, with an in-memory stand-in while Redis is unreachable, so an outage neither fails
// requests nor lifts the limits), in this process's memory otherwise. A refusal is RATE_LIMITED
// with `retryAfterSeconds`. RATE_LIMITS=off makes every limit here let everything through.
import type { Redis } from 'ioredis';
import {
  BurstyRateLimiter,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type IRateLimiterOptions,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Config } from '../env.ts';
import { rateLimited } from '../errors.ts';
import type { Rate, RateName } from './settings.ts';

export interface LimiterStore {
  redis: Redis | undefined;
  /** Prefix of every counter's key (tests isolate themselves with it). */
  keyPrefix: string;
}

/** One counter over a fixed window; Redis-backed when the store has Redis. */
export function createLimiter(store: LimiterStore, name: string, points: number, durationMs: number): RateLimiterAbstract {
  // Redis keeps whole seconds.
  const options: IRateLimiterOptions = { keyPrefix: `${store.keyPrefix}${name}`, points, duration: Math.max(1, Math.ceil(durationMs / 1_000)) };
  if (!store.redis) return new RateLimiterMemory(options);
  return new RateLimiterRedis({ ...options, storeClient: store.redis, insuranceLimiter: new RateLimiterMemory(options) });
}

interface Consumer {
  consume(key: string, points?: number): Promise<RateLimiterRes>;
}

/** A steady rate, plus its burst on top: `5/1s, burst 30` earns the burst back in 30/5 seconds. */
function createRateLimiter(store: LimiterStore, name: string, rate: Rate): Consumer {
  const steady = createLimiter(store, name, rate.points, rate.durationMs);
  if (!rate.burst || rate.burst <= rate.points) return steady;
  const extra = rate.burst - rate.points;
  const burst = createLimiter(store, `${name}:burst`, extra, (rate.burst / rate.points) * rate.durationMs);
  return new BurstyRateLimiter(steady as RateLimiterMemory, burst as RateLimiterMemory);
}

/** What a refusal says was too much. */
const REFUSALS: Record<RateName, string> = {
  authAttempts: 'Too many sign-in attempts from your network',
  register: 'Too many accounts registered from your network',
  refresh: 'Too many token refreshes for this session',
  search: 'Too many searches',
  sendMessage: 'Too many messages to this chat',
  sendMessageTotal: 'Too many messages',
  typing: 'Too many typing signals',
  uploads: 'Too many uploads',
  uploadBytes: 'Too many bytes uploaded',
  addContact: 'Too many contacts added',
  createChat: 'Too many chats created',
  preKeyBundles: "Too many pre-key bundle requests for this user's devices",
  callSignals: 'Too many signals in this call',
  wsConnect: 'Too many connection attempts from your network',
};

export const retryAfterSecondsOf = (msBeforeNext: number) => Math.max(1, Math.ceil(msBeforeNext / 1_000));

export const tooMany = (what: string, msBeforeNext: number) => {
  const seconds = retryAfterSecondsOf(msBeforeNext);
  return rateLimited(`${what}: try again in ${seconds} s.`, seconds);
};

export interface RateLimits {
  /** False under RATE_LIMITS=off. */
  enabled: boolean;
  /** Takes `points` (default 1) from the `name` budget of `key`; throws RATE_LIMITED once it is spent. */
  consume(name: RateName, key: string, points?: number): Promise<void>;
  /** Like consume, but answers the refusal instead of throwing it (for refusals that are not GraphQL errors). */
  take(name: RateName, key: string, points?: number): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }>;
}

export function createRateLimits(config: Pick<Config, 'limits'>, store: LimiterStore): RateLimits {
  const enabled = config.limits.rateLimitsEnabled;
  const limiters = new Map<RateName, Consumer>();
  const limiterOf = (name: RateName) => {
    let limiter = limiters.get(name);
    if (!limiter) limiters.set(name, (limiter = createRateLimiter(store, name, config.limits.rates[name])));
    return limiter;
  };
  const take: RateLimits['take'] = async (name, key, points = 1) => {
    if (!enabled) return { allowed: true };
    try {
      await limiterOf(name).consume(key, points);
      return { allowed: true };
    } catch (refusal) {
      if (!(refusal instanceof RateLimiterRes)) throw refusal;
      return { allowed: false, retryAfterSeconds: retryAfterSecondsOf(refusal.msBeforeNext) };
    }
  };
  return {
    enabled,
    take,
    async consume(name, key, points) {
      const outcome = await take(name, key, points);
      if (!outcome.allowed) throw tooMany(REFUSALS[name], outcome.retryAfterSeconds * 1_000);
    },
  };
}
