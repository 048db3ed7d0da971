// Read replicas (DATABASE_REPLICA_URLS) through @prisma/extension-read-replicas, with
// read-your-writes: a session that just ran a mutation reads from the primary for
// REPLICA_STICKY_SECONDS, past the replicas' lag. Only reads that tolerate that lag for everyone
// else ask for `reader()` (history pages, search, profiles); authorization, feeds and writes keep
// to the primary. With Redis, the mark is also a short-lived key per session, so the session reads
// its writes on whichever instance its next request lands; the instance that took the write keeps
// it in memory too and asks Redis nothing.
import { readReplicas } from '@prisma/extension-read-replicas';
import type { Redis } from 'ioredis';
import type { PrismaClient } from '../generated/prisma/client.ts';
import { createPrisma } from './client.ts';

export interface ReadRouting {
  /** Whether any replica is configured. */
  readonly replicated: boolean;
  /** The client for a lag-tolerant read by this session: a replica, or the primary if it wrote lately (here, or on any instance with Redis). */
  reader(sessionId: string | undefined): Promise<PrismaClient>;
  /** Records that this session wrote: its reads go to the primary for the sticky period, on every instance sharing `redis`. */
  wrote(sessionId: string | undefined): Promise<void>;
  close(): Promise<void>;
}

export interface ReadRoutingOptions {
  primary: PrismaClient;
  replicaUrls: string[];
  stickyMs: number;
  poolSize: number;
  preparedStatements: boolean;
  /** Shares the marks between instances; without it they stay in this instance's memory. */
  redis?: Redis;
  /** Prefix of the marks' keys. Default `kocmoc:rw:`. */
  keyPrefix?: string;
  /** Where a failed Redis mark or look-up is logged (the read then goes to the primary). */
  onRedisError?: (error: unknown) => void;
  now?: () => number;
}

export function createReadRouting(options: ReadRoutingOptions): ReadRouting {
  const { primary, replicaUrls, stickyMs, poolSize, preparedStatements, redis, keyPrefix = 'kocmoc:rw:', onRedisError = () => {}, now = Date.now } = options;
  if (replicaUrls.length === 0) return { replicated: false, reader: async () => primary, wrote: async () => {}, close: async () => {} };
  const replicas = replicaUrls.map((url) => createPrisma(url, { poolSize, preparedStatements }));
  // The extension picks a replica at random for each query of `$replica()`.
  const routed = primary.$extends(readReplicas({ replicas: replicas as never[] }));
  const onReplica = routed.$replica() as unknown as PrismaClient;
  const wroteAt = new Map<string, number>();
  let lastSweep = now();
  return {
    replicated: true,
    async reader(sessionId) {
      if (sessionId === undefined) return onReplica;
      const at = wroteAt.get(sessionId);
      if (at !== undefined && now() - at < stickyMs) return primary;
      if (!redis) return onReplica;
      try {
        // One GET (EXISTS costs the same): the mark expires by itself after the sticky period.
        return (await redis.exists(keyPrefix + sessionId)) ? primary : onReplica;
      } catch (error) {
        // Unsure whether it wrote: the primary is right either way.
        onRedisError(error);
        return primary;
      }
    },
    async wrote(sessionId) {
      if (sessionId === undefined) return;
      const time = now();
      wroteAt.set(sessionId, time);
      // Before the mutation runs, so the mark is there before its answer reaches the client.
      await redis?.set(keyPrefix + sessionId, '1', 'PX', stickyMs).catch(onRedisError);
      // Forget sessions whose sticky period is over, at most once per period.
      if (time - lastSweep < stickyMs) return;
      lastSweep = time;
      for (const [id, at] of wroteAt) if (time - at >= stickyMs) wroteAt.delete(id);
    },
    async close() {
      await Promise.all(replicas.map((replica) => replica.$disconnect()));
    },
  };
}
