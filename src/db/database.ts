// Where the data lives: the configured PostgreSQL, or an embedded one under DATA_DIR.
import { join } from 'node:path';
import type { Config } from '../env.ts';
import type { Logger } from '../logger.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { applyMigrations } from './migrate/index.ts';
import { ensureDatabase, resetSchema, withDatabase } from './pg-admin.ts';

export interface Database {
  url: string;
  /** Whether this process started the server (and stops it). */
  embedded: boolean;
  stop: () => Promise<void>;
}

/** Starts the embedded server if no URL is configured. */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.database.url) return { url: config.database.url, embedded: false, stop: async () => {} };
  const dataDir = join(config.dataDir, 'postgres');
  logger.info({ dataDir, port: config.database.embeddedPort }, 'no DATABASE_URL: starting embedded PostgreSQL');
  const server = await startEmbeddedPostgres({
    dataDir,
    port: config.database.embeddedPort,
    log: (msg) => logger.debug({ postgres: msg }),
  });
  // As root a new cluster lives outside DATA_DIR (embedded-layout.ts): say where the data is.
  logger.info({ clusterDir: server.clusterDir }, `embedded PostgreSQL data in ${server.clusterDir}`);
  return { url: server.url, embedded: true, stop: server.stop };
}

/** Creates the database if needed and applies pending migrations from prisma/migrations. */
export async function migrateDatabase(url: string, logger: Logger): Promise<void> {
  await ensureDatabase(url);
  const { applied } = await applyMigrations({ databaseUrl: url, log: (msg) => logger.debug({ migrate: msg }) });
  if (applied.length > 0) logger.info({ applied }, 'applied migrations');
}

/**
 * A throwaway database for tests and benches, emptied first: `explicitUrl` as is, else a database
 * named `name` beside the configured one, else an embedded server under DATA_DIR/postgres-<name>.
 */
export async function openScratchDatabase(config: Config, name: string, explicitUrl?: string): Promise<Database> {
  let database: Database;
  if (explicitUrl) {
    database = { url: explicitUrl, embedded: false, stop: async () => {} };
  } else if (config.database.url) {
    database = { url: withDatabase(config.database.url, name), embedded: false, stop: async () => {} };
  } else {
    const server = await startEmbeddedPostgres({
      dataDir: join(config.dataDir, `postgres-${name}`),
      // Beside the development server's port, so both can run at once.
      port: config.database.embeddedPort + 1 + (name === 'kocmoc_test' ? 0 : 1),
      database: name,
    });
    database = { url: server.url, embedded: true, stop: server.stop };
  }
  await ensureDatabase(database.url);
  await resetSchema(database.url);
  await applyMigrations({ databaseUrl: database.url });
  return database;
}
