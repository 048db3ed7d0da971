// What read-your-writes across instances costs a lag-tolerant read (src/db/replicas.ts): with Redis,
// a session that did not write on this instance is looked up there (one EXISTS) before its read
// goes to a replica. Measured on the routing alone and on a whole read (`user.findUnique`), with the
// marks in memory only and with them in Redis. The "replica" is the bench database itself: the
// routing, not replication, is what is measured.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { createPrisma } from '../src/db/client.ts';
import { createReadRouting, type ReadRouting } from '../src/db/replicas.ts';
import { benchRedisUrl, type BenchContext } from './setup.ts';
import { fixed, percentile, table } from './stats.ts';

const ROUTING_CALLS = 5_000;
const READS = 2_000;

async function timed(count: number, run: () => Promise<unknown>) {
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const at = performance.now();
    await run();
    latencies.push((performance.now() - at) * 1000);
  }
  const wallUs = ((performance.now() - started) * 1000) / count;
  const cpu = process.cpuUsage(cpuBefore);
  return { meanUs: wallUs, p50Us: percentile(latencies, 50), p99Us: percentile(latencies, 99), cpuUs: (cpu.user + cpu.system) / count };
}

export async function runStickyReads({ databaseUrl }: BenchContext): Promise<void> {
  const primary = createPrisma(databaseUrl, { poolSize: 4 });
  const redis = new Redis(benchRedisUrl());
  const common = { primary, replicaUrls: [databaseUrl], stickyMs: 2_000, poolSize: 4, preparedStatements: true };
  const routings: Array<[string, ReadRouting]> = [
    ['marks in memory (no Redis)', createReadRouting(common)],
    ['marks in Redis (EXISTS per read)', createReadRouting({ ...common, redis, keyPrefix: `kocmoc-bench:rw:${randomUUID()}:` })],
  ];
  try {
    const user = await primary.user.findFirst({ select: { id: true } });
    const userId = user?.id ?? randomUUID();
    // A session that wrote on another instance long ago: every read asks (memory: nothing to ask).
    const sessionId = randomUUID();
    const rows: string[][] = [];
    for (const round of [1, 2]) {
      for (const [name, routing] of routings) {
        // Warm the replica pool and the JIT once per variant.
        for (let index = 0; index < 200; index++) await (await routing.reader(sessionId)).user.findUnique({ where: { id: userId }, select: { id: true } });
        const route = await timed(ROUTING_CALLS, () => routing.reader(sessionId));
        const read = await timed(READS, async () => (await routing.reader(sessionId)).user.findUnique({ where: { id: userId }, select: { id: true, displayName: true } }));
        rows.push([`${name}, round ${round}`, fixed(route.meanUs), fixed(route.p99Us), fixed(route.cpuUs), fixed(read.meanUs), fixed(read.p50Us), fixed(read.p99Us), fixed(read.cpuUs)]);
      }
    }
    console.log(`one session reading without having written (its mark looked up on every read); ${ROUTING_CALLS} routings, ${READS} reads, sequential`);
    console.log(table(['variant', 'route µs', 'route p99 µs', 'route CPU µs', 'read µs', 'read p50 µs', 'read p99 µs', 'read CPU µs'], rows));
  } finally {
    await Promise.all(routings.map(([, routing]) => routing.close()));
    await primary.$disconnect();
    redis.disconnect();
  }
}
