// What the presence tracker needs of its shared state, implemented by memory-store.ts (one
// process) and redis-store.ts (a cluster).

/** What a store reports after setting this instance's connection count of one user. */
export interface CountResult {
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

export interface Offline {
  userId: string;
  lastSeenMs: number;
}

export interface SettleResult {
  offline: Offline[];
  /** Users still in their grace period, with how long is left. */
  waits: Array<{ userId: string; ms: number }>;
}

/** Shared presence state: Redis for a cluster, a few maps for one process. */
export interface PresenceStore {
  /** Sets this instance's connection count of a user; `max` 0 means no limit (disconnects, resyncs). */
  setCount(userId: string, count: number, max: number): Promise<CountResult>;
  /** Reports those of these users (or, with null, of all users) whose grace has run out. */
  settle(userIds: readonly string[] | null, graceMs: number): Promise<SettleResult>;
  /** Heartbeat, sweep of dead instances and settling of due users, at once. */
  tick(graceMs: number, timeoutMs: number): Promise<{ registered: boolean; offline: Offline[]; more: boolean }>;
  /** Which of these (distinct, at least one) users are ONLINE as last reported. */
  online(userIds: readonly string[]): Promise<Set<string>>;
  /** Removes this instance's connections; returns users to report offline at once (in-process store only). */
  leave(): Promise<Offline[]>;
}

/** `store.online` for any list of users: asks once per user, and not at all for none. */
export async function onlineAmong(store: Pick<PresenceStore, 'online'>, userIds: readonly string[]): Promise<Set<string>> {
  const unique = [...new Set(userIds)];
  return unique.length === 0 ? new Set() : store.online(unique);
}
