// Gives the test run a fresh, migrated database: TEST_DATABASE_URL as is, else a `kocmoc_test`
// database beside DATABASE_URL, else an embedded PostgreSQL under DATA_DIR/postgres-kocmoc_test.
// Also resolves, once for every test file, the Redis the tests that need one use: REDIS_URL, else
// the local default.
import type { TestProject } from 'vitest/node';
import { openScratchDatabase } from '../../src/db/database.ts';
import { loadConfig } from '../../src/env.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const config = loadConfig({ ...process.env, NODE_ENV: 'test' });
  const database = await openScratchDatabase(config, 'kocmoc_test', config.database.testUrl);
  project.provide('databaseUrl', database.url);
  project.provide('redisUrl', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  return database.stop;
}
