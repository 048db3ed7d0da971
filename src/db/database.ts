// Where the data lives: the configured PostgreSQL, or an embedded one under DATA_DIR.
import { join } from 'node:path';
import type { Config } from '../env.ts';
import type { Logger } from '../logger.ts';
import { startEmbeddedPostgres } from './embedded.ts';
import { applyMigrations, ensureDatabase } from './migrations.ts';

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
  return { url: server.url, embedded: true, stop: server.stop };
}

/** Creates the database if needed and applies pending migrations from prisma/migrations. */
export async function migrateDatabase(url: string, logger: Logger): Promise<void> {
  await ensureDatabase(url);
  const { applied } = await applyMigrations({ databaseUrl: url, log: (msg) => logger.debug({ migrate: msg }) });
  if (applied.length > 0) logger.info({ applied }, 'applied migrations');
}
