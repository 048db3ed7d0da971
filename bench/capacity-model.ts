// The capacity model of docs/capacity.md: from the benches' measured per-core costs
// (bench/RESULTS.md), what a deployment with `users` concurrent connections sending `msgsPerS`
// messages a second into chats of `groupSize` members needs: API instances, Redis masters and
// PostgreSQL cores, and which tier runs out first. Pure functions: `npm run capacity` prints them,
// the four-instance bench checks them.

/** Measured costs, each with where it comes from. */
export const COSTS = {
  /** API CPU per sendMessage, with Redis and a separate worker: 1.22-1.42 ms (send-message/push benches, 2026-11). */
  apiSendMs: 1.3,
  /** API CPU per delivery of an event to one subscribed socket: 46.5-53.5 µs (fanout bench, ours). */
  apiDeliveryUs: 50,
  /**
   * API CPU per message on each instance the message reaches, whatever its number of subscribers
   * there: the event off Redis, the chat feed's handling of it (ordering, the member-list check, the
   * reads of positions that arrived out of order when several instances send into the chat). Fitted
   * (least squares, a + k x this + G x c) on the four-instances bench with 1 and 2 instances at 20 and
   * 200 members: 2.46 ms (2026-12-03, saturated shared machine, so likely high; the quiet four-instance
   * run of 08:32 fits 1.5-2.5 ms). bench/RESULTS.md, issue #21. The single-instance benches fold one
   * of these into apiSendMs, so the model counts one too many: a margin, kept on purpose.
   */
  apiInstanceEventMs: 2.5,
  /** Memory per idle authenticated graphql-ws socket: 7.2 KiB V8 heap, 6-9 KiB RSS (ws-idle bench). */
  connectionKib: 9,
  /** RSS of an API process before any socket: ~250 MiB (tsx, Prisma, Yoga, the worker pool). */
  instanceBaseMib: 250,
  /** PostgreSQL CPU per sendMessage (1 statement): 0.79-0.92 ms (push bench). */
  pgSendMs: 0.85,
  /** Redis CPU per sendMessage with one instance subscribed, push off: 0.037-0.038 ms (push bench). */
  redisSendMs: 0.038,
  /** Added Redis CPU per sendMessage when push jobs are queued (BullMQ): 0.07-0.078 minus the above. */
  redisPushMs: 0.036,
} as const;

/** What one unit of each tier offers, and how far a tier goes before it must be split differently. */
export const UNITS = {
  /** An API pod: 1 core (deploy/kubernetes requests), 1 GiB memory limit. */
  apiCores: 1,
  apiMemoryMib: 1024,
  /** Redis runs commands on one thread: one core per master. */
  redisCoresPerMaster: 1,
  /** Plan each tier to this share of its CPU (headroom for bursts, GC, failover). */
  targetUtilization: 0.7,
  /** A PostgreSQL primary takes writes on one machine: past this many cores, shard or batch writes. */
  pgPrimaryMaxCores: 64,
  /** Instances or masters past which operating them becomes the problem (scrape, rollout, slots). */
  apiMaxInstances: 500,
  redisMaxMasters: 100,
} as const;

export interface Workload {
  /** Concurrent connected users, one socket each. */
  users: number;
  /** Messages sent per second over the whole deployment. */
  msgsPerS: number;
  /** Members per chat a message goes to. */
  groupSize: number;
  /** Share of a chat's members connected (each gets a live delivery). Default 1: every member. */
  onlineShare?: number;
  /** Push notifications queued through Redis. Default true. */
  push?: boolean;
}

export interface Capacity {
  deliveriesPerS: number;
  api: { cores: number; memoryMib: number; instances: number; cpuBound: boolean };
  redis: { cores: number; masters: number; instancesPerMessage: number };
  postgres: { cores: number };
  /** Each tier's need as a share of how far it can go (1 = at its limit). */
  pressure: { api: number; redis: number; postgres: number };
  bottleneck: 'api' | 'redis' | 'postgres';
}

export function capacity({ users, msgsPerS, groupSize, onlineShare = 1, push = true }: Workload): Capacity {
  const deliveriesPerS = msgsPerS * groupSize * onlineShare;
  const socketMib = (users * COSTS.connectionKib) / 1024;
  const byMemory = Math.ceil(socketMib / (UNITS.apiMemoryMib - COSTS.instanceBaseMib));
  // The per-instance term makes the CPU need depend on the instance count: start from the count
  // without it and add instances until the CPU they need fits them (a few rounds at most).
  let instances = Math.max(2, byMemory);
  let apiCores = 0;
  let byCpu = 0;
  let instancesPerMessage = 1;
  for (let round = 0; round < 20; round++) {
    // Sharded pub/sub: a message goes once to every instance with a member of the chat connected.
    instancesPerMessage = Math.min(instances, Math.max(1, Math.ceil(groupSize * onlineShare)));
    apiCores = (msgsPerS * (COSTS.apiSendMs + instancesPerMessage * COSTS.apiInstanceEventMs)) / 1000 + (deliveriesPerS * COSTS.apiDeliveryUs) / 1e6;
    byCpu = Math.ceil(apiCores / (UNITS.apiCores * UNITS.targetUtilization));
    if (byCpu <= instances) break;
    instances = byCpu;
  }
  const redisCores = (msgsPerS * (COSTS.redisSendMs * (1 + instancesPerMessage) / 2 + (push ? COSTS.redisPushMs : 0))) / 1000;
  const masters = Math.max(1, Math.ceil(redisCores / (UNITS.redisCoresPerMaster * UNITS.targetUtilization)));
  const pgCores = (msgsPerS * COSTS.pgSendMs) / 1000 / UNITS.targetUtilization;
  const pressure = {
    api: instances / UNITS.apiMaxInstances,
    redis: masters / UNITS.redisMaxMasters,
    postgres: pgCores / UNITS.pgPrimaryMaxCores,
  };
  const bottleneck = (Object.entries(pressure) as Array<[Capacity['bottleneck'], number]>).sort((a, b) => b[1] - a[1])[0]![0];
  return {
    deliveriesPerS,
    api: { cores: apiCores, memoryMib: socketMib + instances * COSTS.instanceBaseMib, instances, cpuBound: byCpu >= byMemory },
    redis: { cores: redisCores, masters, instancesPerMessage },
    postgres: { cores: pgCores },
    pressure,
    bottleneck,
  };
}

/**
 * Sends a second `cores` CPU cores can carry for one chat of `groupSize` subscribers, counting
 * every process on the machine (API, PostgreSQL, Redis and the load clients at `clientDeliveryUs`).
 */
export function sendsPerSecondOn(cores: number, groupSize: number, clientDeliveryUs: number, instancesPerMessage: number): number {
  const perMessageMs =
    COSTS.apiSendMs +
    instancesPerMessage * COSTS.apiInstanceEventMs +
    COSTS.pgSendMs +
    COSTS.redisSendMs * (1 + instancesPerMessage) / 2 +
    (groupSize * (COSTS.apiDeliveryUs + clientDeliveryUs)) / 1000;
  return (cores * 1000) / perMessageMs;
}
