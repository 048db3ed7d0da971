// `npm run db:migrate` applies pending migrations; `npm run db:migration -- <name>` writes a new one
// from changes to prisma/schema.prisma. Both work offline and on the embedded database.
import { loadConfig } from '../env.ts';
import { createLogger } from '../logger.ts';
import { migrateDatabase, openDatabase } from './database.ts';
import { createMigration } from './migrate/index.ts';
import { ensureDatabase } from './pg-admin.ts';

const [command, name] = process.argv.slice(2);
const config = loadConfig();
const logger = createLogger(config.logLevel);
const database = await openDatabase(config, logger);
// Both need a session of their own (an advisory lock, a shadow database): never through a pooler.
const url = config.database.directUrl ?? database.url;
try {
  if (command === 'migrate') {
    await migrateDatabase(url, logger);
    logger.info('database is up to date');
  } else if (command === 'create') {
    if (!name || !/^[a-z0-9_]+$/.test(name)) {
      throw new Error('Usage: npm run db:migration -- <name>   (name: lower-case letters, digits, underscores)');
    }
    await ensureDatabase(url);
    const folder = await createMigration({ databaseUrl: url, name });
    logger.info(folder ? `wrote ${folder}` : 'schema.prisma matches the migrations: nothing to write');
  } else {
    throw new Error('Usage: tsx src/db/cli.ts migrate | create <name>');
  }
} catch (error) {
  logger.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
} finally {
  await database.stop();
}
