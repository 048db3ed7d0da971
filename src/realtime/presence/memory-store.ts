// In-process presence store: one instance, so no heartbeats; the tracker's grace timers settle users.
import type { PresenceStore, SettleResult } from './store.ts';

export function createMemoryStore(): PresenceStore {
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
