// Read-only presence for processes that hold no connections (the push-notification worker): the
// same answer as the API instances' trackers give, from the same Redis keys.
import type { Redis } from 'ioredis';
import { DEFAULT_KEY_PREFIX, presenceKeys, redisOnline } from './redis-store.ts';
import { onlineAmong } from './store.ts';

export interface PresenceReader {
  /**
   * Which of these users are ONLINE as last reported through the tracker's `onChange`: they have
   * a live connection somewhere, or lost their last one less than `offlineGraceMs` ago. Matching
   * the reported state keeps what a query shows consistent with the events that follow it.
   */
  onlineUserIds(userIds: readonly string[]): Promise<Set<string>>;
}

export interface PresenceReaderOptions {
  /** The Redis the API instances' trackers use. */
  redis: Redis;
  /** The trackers' `keyPrefix`. Default `kocmoc:`. */
  keyPrefix?: string;
}

export function createPresenceReader({ redis, keyPrefix = DEFAULT_KEY_PREFIX }: PresenceReaderOptions): PresenceReader {
  const store = { online: redisOnline(redis, presenceKeys(keyPrefix)) };
  return { onlineUserIds: (userIds) => onlineAmong(store, userIds) };
}
