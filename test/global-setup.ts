// Gives the test run a fresh, migrated database: TEST_DATABASE_URL as is, else a `kocmoc_test`
// database beside DATABASE_URL, else an embedded PostgreSQL under DATA_DIR/postgres-test.
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { applyMigrations, ensureDatabase } from '../src/db/migrations.ts';
import { loadConfig } from '../src/env.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const config = loadConfig({ ...process.env, NODE_ENV: 'test' });
  let stop = async () => {};
  let url: string;
  if (config.database.testUrl) {
    url = config.database.testUrl;
  } else if (config.database.url) {
    const derived = new URL(config.database.url);
    derived.pathname = '/kocmoc_test';
    url = derived.toString();
  } else {
    const server = await startEmbeddedPostgres({
      dataDir: join(config.dataDir, 'postgres-test'),
      port: config.database.embeddedPort + 1,
      database: 'kocmoc_test',
    });
    url = server.url;
    stop = server.stop;
  }
  await ensureDatabase(url);
  await resetSchema(url);
  await applyMigrations({ databaseUrl: url });
  project.provide('databaseUrl', url);
  return stop;
}

/** Every run starts from an empty database, so tests never see a previous run's rows. */
async function resetSchema(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;');
  } finally {
    await client.end();
  }
}
