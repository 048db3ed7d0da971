// PostgreSQL administration through plain `pg` connections: creating, emptying and dropping
// databases, and rewriting connection strings. No Prisma involved.
import pg from 'pg';

/**
 * A connected client of its own for `databaseUrl`; the caller ends it. Errors of the idle client
 * are ignored: a dropped connection surfaces on the next query instead.
 */
export async function openClient(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Runs `fn` on a client of its own for `databaseUrl`, then ends the client (also on failure). */
export async function withClient<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  return endAfter(await openClient(databaseUrl), fn);
}

/** Runs `sql` (one or more statements, no parameters) on a connection of its own. */
export async function runSql(databaseUrl: string, sql: string): Promise<void> {
  await withClient(databaseUrl, (client) => client.query(sql));
}

/**
 * Creates the database named in `databaseUrl` unless it exists, connecting to the `postgres`
 * maintenance database of the same server (`template1` where there is none, as Prisma does).
 * Losing a creation race to another process is fine.
 */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const name = databaseName(databaseUrl);
  await withMaintenanceClient(databaseUrl, async (client) => {
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (rowCount) return;
      await client.query(`CREATE DATABASE ${quoteIdent(name)}`);
    } catch (error) {
      // 42P04 duplicate_database; 23505 when two CREATE DATABASE race on the catalog's unique index.
      const code = sqlState(error);
      if (code !== '42P04' && code !== '23505') throw error;
    }
  });
}

/**
 * Drops the database named in `databaseUrl` if it exists. `WITH (FORCE)` (PostgreSQL 13+) ends
 * the sessions still connected to it first.
 * @param adminUrl - Where to run the DROP. Default: the server's maintenance database, as for
 *   {@link ensureDatabase}.
 */
export async function dropDatabase(databaseUrl: string, adminUrl?: string): Promise<void> {
  const sql = `DROP DATABASE IF EXISTS ${quoteIdent(databaseName(databaseUrl))} WITH (FORCE)`;
  if (adminUrl !== undefined) return runSql(adminUrl, sql);
  await withMaintenanceClient(databaseUrl, (client) => client.query(sql));
}

/** Drops and recreates the `public` schema of `databaseUrl`: every table, type and row in it goes. */
export function resetSchema(databaseUrl: string): Promise<void> {
  return runSql(databaseUrl, 'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;');
}

/** The database named in the path of `databaseUrl`, decoded. Throws if there is none. */
export function databaseName(databaseUrl: string): string {
  const name = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  if (!name) throw new Error('the database URL names no database');
  return name;
}

/** `databaseUrl` with its database replaced by `database` (credentials and parameters kept). */
export function withDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/** `name` as a double-quoted SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The `code` of an error: its SQLSTATE when PostgreSQL raised it. */
export function sqlState(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

async function withMaintenanceClient<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  let client: pg.Client;
  try {
    client = await openClient(withDatabase(databaseUrl, 'postgres'));
  } catch (error) {
    if (sqlState(error) !== '3D000') throw error; // invalid_catalog_name: no such database
    client = await openClient(withDatabase(databaseUrl, 'template1'));
  }
  return endAfter(client, fn);
}

async function endAfter<T>(client: pg.Client, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
