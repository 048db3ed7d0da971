// Read replicas (DATABASE_REPLICA_URLS) through @prisma/extension-read-replicas, with
// read-your-writes: a session that just ran a mutation reads from the primary for
// REPLICA_STICKY_SECONDS, past the replicas' lag. Only reads that tolerate that lag for everyone
// else ask for `reader()` (history pages, search, profiles); authorization, feeds and writes keep
// to the primary.
import { readReplicas } from '@prisma/extension-read-replicas';
import type { PrismaClient } from '../generated/prisma/client.ts';
import { createPrisma } from './client.ts';

export interface ReadRouting {
  /** Whether any replica is configured. */
  readonly replicated: boolean;
  /** The client for a lag-tolerant read by this session: a replica, or the primary if it wrote lately. */
  reader(sessionId: string | undefined): PrismaClient;
  /** Records that this session wrote: its reads go to the primary for the sticky period. */
  wrote(sessionId: string | undefined): void;
  close(): Promise<void>;
}

export interface ReadRoutingOptions {
  primary: PrismaClient;
  replicaUrls: string[];
  stickyMs: number;
  poolSize: number;
  preparedStatements: boolean;
  now?: () => number;
}

export function createReadRouting({ primary, replicaUrls, stickyMs, poolSize, preparedStatements, now = Date.now }: ReadRoutingOptions): ReadRouting {
  if (replicaUrls.length === 0) return { replicated: false, reader: () => primary, wrote: () => {}, close: async () => {} };
  const replicas = replicaUrls.map((url) => createPrisma(url, { poolSize, preparedStatements }));
  // The extension picks a replica at random for each query of `$replica()`.
  const routed = primary.$extends(readReplicas({ replicas: replicas as never[] }));
  const onReplica = routed.$replica() as unknown as PrismaClient;
  const wroteAt = new Map<string, number>();
  let lastSweep = now();
  return {
    replicated: true,
    reader(sessionId) {
      const at = sessionId === undefined ? undefined : wroteAt.get(sessionId);
      return at !== undefined && now() - at < stickyMs ? primary : onReplica;
    },
    wrote(sessionId) {
      if (sessionId === undefined) return;
      const time = now();
      wroteAt.set(sessionId, time);
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
