// The capacity model of docs/capacity.md: from the benches' measured per-core costs
// (bench/RESULTS.md), what a deployment with `users` concurrent connections sending `msgsPerS`
// messages a second into chats of `groupSize` members needs: API instances, Redis masters and
// PostgreSQL cores, and which tier runs out first. Pure functions: `npm run capacity` prints them,
// the four-instance bench checks them.

/** Measured costs, each with where it comes from. */
export const COSTS = {
  /**
   * API CPU per sendMessage, with Redis and a separate worker, every feature of a send on (mentions,
   * search indexing, drafts): 2.1 ms, the four-instances bench's least-squares fit
   * (a + k x instances + G x c) over five quiet runs, 1, 2 and 4 instances at 20 and 200 members
   * (2026-12-04 18:56-18:59, others 1-3 %; bench/RESULTS.md "Capacity model re-fit"). It was 1.3 ms
   * (push bench, 2026-11), before mentions and the search index joined the send.
   */
  apiSendMs: 2.1,
  /** API CPU per delivery of an event to one subscribed socket: 42 µs (the same fit; fanout bench: 36-54 µs). */
  apiDeliveryUs: 42,
  /**
   * API CPU per message on each instance the message reaches, whatever its number of subscribers
   * there: the event off Redis, the chat feed, and above all the event's execution, once per
   * instance and distinct operation (a CPU profile: the message read through Prisma and the
   * selection's GraphQL execution). 1.8 ms, the fit above. Runs on 1 and 2 instances alone fit
   * 0.3 ms: between one and two instances it is inside this machine's noise, and four API
   * processes on two cores add contention of their own to it, so it is the model's least certain
   * input. Re-fit it on your hardware with FOUR_INSTANCES_COUNT=1, 2 and 4.
   */
  apiInstanceEventMs: 1.8,
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
