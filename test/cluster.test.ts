// Two server instances (two ports) sharing one PostgreSQL and one Redis, as behind a load balancer.
// The scenarios (test/support/multi-instance.ts) run on a Redis Cluster too: test/redis-cluster.test.ts.
import { afterAll, beforeAll, describe } from 'vitest';
import { testRedisUrl } from './support/helpers.ts';
import { multiInstanceScenarios, startInstances, type Instances } from './support/multi-instance.ts';

let instances: Instances;

beforeAll(async () => {
  instances = await startInstances({ REDIS_URL: testRedisUrl() });
}, 60_000);
afterAll(async () => {
  await instances?.stop();
});

describe('two instances, one Redis', () => {
  multiInstanceScenarios(() => instances);
});
