// Read-your-writes routing (src/db/replicas.ts) between two instances, without a real replica: the
// "replica" URL is the test database itself, so only where each read is sent is checked (the
// replica itself: test/read-replicas.test.ts). Marks stay in memory without Redis, cross
// instances through Redis, expire with the sticky period, and a Redis that fails sends reads to
// the primary.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createPrisma } from '../src/db/client.ts';
import { createReadRouting, type ReadRouting, type ReadRoutingOptions } from '../src/db/replicas.ts';
import { testRedisUrl } from './support/helpers.ts';
import { startRedisServer } from './support/faults.ts';

const databaseUrl = inject('databaseUrl');
const primary = createPrisma(databaseUrl, { poolSize: 2 });
/** Long enough for a loaded machine to get from a write to the reads after it. */
const STICKY_MS = 1_000;
const keyPrefix = `kocmoc-test:${randomUUID()}:rw:`;
const opened: Array<ReadRouting | Redis> = [];

function routing(extra: Partial<ReadRoutingOptions> = {}) {
  const reads = createReadRouting({ primary, replicaUrls: [databaseUrl], stickyMs: STICKY_MS, poolSize: 1, preparedStatements: true, keyPrefix, ...extra });
  opened.push(reads);
  return reads;
}
function redis(url = testRedisUrl()) {
  const client = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  opened.push(client);
  return client;
}

afterAll(async () => {
  await Promise.all(opened.map((item) => ('close' in item ? item.close() : Promise.resolve(item.disconnect()))));
  await primary.$disconnect();
});

describe('read-your-writes routing', () => {
  it('without Redis, keeps a session on the primary only on the instance that took its write', async () => {
    const [a, b] = [routing(), routing()];
    const session = randomUUID();
    await a.wrote(session);
    expect(await a.reader(session)).toBe(primary);
    expect(await b.reader(session)).not.toBe(primary);
    expect(await a.reader(randomUUID())).not.toBe(primary);
  });

  it('with Redis, keeps it on the primary on every instance until the sticky period ends', async () => {
    const shared = redis();
    const [a, b] = [routing({ redis: shared }), routing({ redis: redis() })];
    const session = randomUUID();
    expect(await b.reader(session)).not.toBe(primary);
    await a.wrote(session);
    expect(await shared.pttl(keyPrefix + session)).toBeGreaterThan(0);
    expect(await b.reader(session)).toBe(primary);
    expect(await b.reader(randomUUID())).not.toBe(primary);
    await new Promise((resolve) => setTimeout(resolve, STICKY_MS + 50));
    expect(await shared.exists(keyPrefix + session)).toBe(0);
    expect(await b.reader(session)).not.toBe(primary);
    expect(await a.reader(session)).not.toBe(primary);
  });

  it('reads from the primary when Redis cannot say, and reports the error', async () => {
    const server = await startRedisServer();
    const errors: unknown[] = [];
    const reads = routing({ redis: redis(server.url), onRedisError: (error) => errors.push(error) });
    const session = randomUUID();
    expect(await reads.reader(session)).not.toBe(primary);
    await server.kill();
    expect(await reads.reader(session)).toBe(primary);
    // The mark cannot be written either: the mutation goes on, the error is reported.
    await reads.wrote(randomUUID());
    expect(errors.length).toBeGreaterThanOrEqual(2);
  });
});
