// Offline migrations through Prisma's WASM schema engine.
//
// The Prisma CLI needs a native schema engine it downloads on first use; this module drives the
// same engine compiled to WebAssembly (@prisma/schema-engine-wasm) over a driver adapter
// (@prisma/adapter-pg) instead, so `prisma/migrations` works without network access and records
// `_prisma_migrations` exactly like `prisma migrate deploy`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { SchemaFilter } from '@prisma/schema-engine-wasm/schema_engine_bg';
import { sqlState, withClient } from '../pg-admin.ts';
import { withEngine } from './engine.ts';
import { LOCKFILE_CONTENT, listMigrationFolders, readMigrationsList, slugify, writeMigration } from './folder.ts';

const DEFAULT_SCHEMA_PATH = 'prisma/schema.prisma';
const DEFAULT_MIGRATIONS_DIR = 'prisma/migrations';
const NO_FILTERS: SchemaFilter = { externalTables: [], externalEnums: [] };
// Our own advisory-lock key, serialising applyMigrations() callers. It must differ from the key
// the engine locks internally (72707369), or our session would block the engine's.
const APPLY_LOCK_KEY = 0x6b6f636d; // "kocm"

/** Options of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /** Connection string of the target database (which must exist, see `ensureDatabase` in db/pg-admin.ts). */
  databaseUrl: string;
  /** Prisma schema handed to the engine. Default `prisma/schema.prisma` (relative to cwd). */
  schemaPath?: string;
  /** Folder of `<timestamp>_<name>/migration.sql` folders. Default `prisma/migrations`. */
  migrationsDir?: string;
  /** Receives progress lines and the engine's warnings. Default: silent. */
  log?: (msg: string) => void;
}

/** Options of {@link pendingMigrations}. */
export interface PendingMigrationsOptions {
  /** Connection string of the database to inspect. */
  databaseUrl: string;
  /** Default `prisma/migrations`. */
  migrationsDir?: string;
}

/** Options of {@link createMigration}. */
export interface CreateMigrationOptions {
  /**
   * A server to create the temporary shadow database on (the existing migrations are replayed
   * there, then diffed against the schema). The database in the URL must exist; it is not changed.
   */
  databaseUrl: string;
  /** Migration name; slugified to `[a-z0-9_]`, e.g. `add user bio` -> `add_user_bio`. */
  name: string;
  /** Default `prisma/schema.prisma`. */
  schemaPath?: string;
  /** Default `prisma/migrations`. */
  migrationsDir?: string;
  /** Receives the engine's warnings. Default: silent. */
  log?: (msg: string) => void;
}

/**
 * Applies the migrations of `migrationsDir` that the database has not run yet, like
 * `prisma migrate deploy`. Idempotent, and safe to call from several processes at once: callers
 * queue on a PostgreSQL advisory lock (the engine also takes its own, like the CLI).
 */
export async function applyMigrations(options: ApplyMigrationsOptions): Promise<{ applied: string[] }> {
  const log = options.log ?? (() => {});
  const migrationsDir = path.resolve(options.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const schemaPath = path.resolve(options.schemaPath ?? DEFAULT_SCHEMA_PATH);

  return withClient(options.databaseUrl, async (lockClient) => {
    try {
      await lockClient.query('SELECT pg_advisory_lock($1)', [APPLY_LOCK_KEY]);
      // Read the folder only once we hold the lock, so we see what the previous holder saw.
      const migrationsList = await readMigrationsList(migrationsDir);
      const datamodel = await readFile(schemaPath, 'utf8').catch(() => undefined);
      const { appliedMigrationNames } = await withEngine(
        {
          databaseUrl: options.databaseUrl,
          datamodel: datamodel === undefined ? undefined : { path: schemaPath, content: datamodel },
          log,
        },
        (engine) => engine.applyMigrations({ migrationsList, filters: NO_FILTERS }),
      );
      for (const name of appliedMigrationNames) log(`applied migration ${name}`);
      return { applied: appliedMigrationNames };
    } finally {
      // Closing the session would release the lock too; unlocking first just frees it sooner.
      await lockClient.query('SELECT pg_advisory_unlock($1)', [APPLY_LOCK_KEY]).catch(() => {});
    }
  });
}

/**
 * Names of the migration folders that `_prisma_migrations` does not list as finished, in apply
 * order. All of them when the table does not exist yet. Plain SQL: no engine is loaded.
 */
export async function pendingMigrations(options: PendingMigrationsOptions): Promise<string[]> {
  const migrationsDir = path.resolve(options.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const local = await listMigrationFolders(migrationsDir);
  return withClient(options.databaseUrl, async (client) => {
    try {
      const { rows } = await client.query<{ migration_name: string }>(
        'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
      );
      const done = new Set(rows.map((row) => row.migration_name));
      return local.filter((name) => !done.has(name));
    } catch (error) {
      if (sqlState(error) === '42P01') return local; // undefined_table: nothing applied yet
      throw error;
    }
  });
}

/**
 * Writes `<migrationsDir>/<YYYYMMDDHHMMSS>_<name>/migration.sql` with the SQL that takes the
 * existing migrations to the current schema (like `prisma migrate dev --create-only`), plus
 * `migration_lock.toml` if missing. Returns the new folder's path, or null if nothing changed.
 * Replaying the migrations needs a shadow database: a temporary `kocmoc_shadow_<random>` is
 * created on the server of `databaseUrl` and dropped afterwards, also on failure.
 */
export async function createMigration(options: CreateMigrationOptions): Promise<string | null> {
  const log = options.log ?? (() => {});
  const slug = slugify(options.name);
  const migrationsDir = path.resolve(options.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const schemaPath = path.resolve(options.schemaPath ?? DEFAULT_SCHEMA_PATH);
  const schema = { path: schemaPath, content: await readFile(schemaPath, 'utf8') };
  const migrationsList = await readMigrationsList(migrationsDir);

  // Diff from the replayed migrations, not from `empty`: that is what `migrate dev` does, and it
  // keeps statements such as `CREATE SCHEMA "public"` out of the first migration.
  const { exitCode, stdout } = await withEngine(
    { databaseUrl: options.databaseUrl, datamodel: schema, log },
    (engine) =>
      engine.diff({
        // A missing lockfile (first migration) would leave the engine unable to tell the connector.
        from: {
          tag: 'migrations',
          ...migrationsList,
          lockfile: { ...migrationsList.lockfile, content: migrationsList.lockfile.content ?? LOCKFILE_CONTENT },
        },
        to: { tag: 'schemaDatamodel', files: [schema] },
        script: true,
        exitCode: true, // 0: no difference, 2: a non-empty script
        filters: NO_FILTERS,
      }),
  );
  if (exitCode === 0 || !stdout) return null;
  return writeMigration(migrationsDir, migrationsList, slug, stdout);
}
