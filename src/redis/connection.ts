// One way to open Redis, for a single server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES).
// Config carries either as one string, `config.redisUrl`: a redis:// URL, or `redis-cluster://`
// followed by the nodes, so everything that takes a Redis takes a cluster without new plumbing.
import { Cluster, Redis, type RedisOptions } from 'ioredis';

const CLUSTER_SCHEME = 'redis-cluster://';
/** How often a cluster client re-reads the slot map unprompted (ioredis's default). */
const SLOTS_REFRESH_MS = 5_000;

export interface ClusterNode {
  host: string;
  port: number;
}

/** The `config.redisUrl` of a cluster reached through these nodes, `host:port,host:port` (some of them; the rest is discovered). */
export function clusterTarget(nodes: string): string {
  return CLUSTER_SCHEME + nodes;
}

/** The nodes of a `clusterTarget`, or undefined for a single Redis URL. */
export function clusterNodesOf(target: string): ClusterNode[] | undefined {
  if (!target.startsWith(CLUSTER_SCHEME)) return undefined;
  return target
    .slice(CLUSTER_SCHEME.length)
    .split(',')
    .map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    });
}

export const isCluster = (target: string) => target.startsWith(CLUSTER_SCHEME);

/**
 * A connection for commands. On a cluster, an ioredis `Cluster`: it answers the same commands
 * (scripts included, as long as each touches one slot), so it is typed as the `Redis` callers know.
 */
export function connectRedis(target: string, options: RedisOptions = {}): Redis {
  const nodes = clusterNodesOf(target);
  if (!nodes) return new Redis(target, options);
  const { maxRetriesPerRequest, ...redisOptions } = options;
  const cluster = new Cluster(nodes, {
    redisOptions: { ...redisOptions, maxRetriesPerRequest },
    // Each refresh opens a connection for CLUSTER SLOTS and rebuilds a 16,384-slot map, per client
    // (a process has one per queue and worker besides its own two): at 1 s that was ~6 % of an idle
    // API instance's CPU (bench/RESULTS.md). Failovers and moved slots do not wait for it: a
    // command that meets a closed connection, CLUSTERDOWN or MOVED refreshes at once (below), and
    // the event bus refreshes itself when a channel's slot moves (src/realtime/cluster-bus.ts).
    slotsRefreshInterval: SLOTS_REFRESH_MS,
    retryDelayOnClusterDown: 200,
    retryDelayOnFailover: 200,
  });
  return cluster as unknown as Redis;
}

/**
 * A prefix that keeps every key under it in one hash slot on a cluster (`{kocmoc}`), as BullMQ's
 * and the presence scripts' multi-key commands require; unchanged on a single Redis.
 */
export function slotPrefix(target: string | undefined, prefix: string): string {
  if (!target || !isCluster(target) || /\{[^}]+\}/.test(prefix)) return prefix;
  return `{${prefix}}`;
}
