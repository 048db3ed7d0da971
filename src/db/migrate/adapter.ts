// The driver adapter the schema engine talks to PostgreSQL through: PrismaPg, with what the
// engine needs on top of it (cleanup, catalog "char" columns, whole-script execution).
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import {
  ColumnTypeEnum,
  type SqlDriverAdapter,
  type SqlQueryable,
  type SqlMigrationAwareDriverAdapterFactory,
} from '@prisma/driver-adapter-utils';
import { dropDatabase, quoteIdent, runSql, withDatabase } from '../pg-admin.ts';

/**
 * A PrismaPg factory that closes what it opened, because the engine does not reliably dispose its
 * connections (an open pg pool keeps the process alive). PrismaPg's own connectToShadowDb() would
 * also leak a pool and try to drop the shadow database while still connected to it.
 * @param log - Receives the failure to drop a shadow database.
 * @returns `factory` for the engine, and `close()` to end every pool and drop every shadow database.
 */
export function trackingAdapterFactory(databaseUrl: string, log: (msg: string) => void) {
  const pools: pg.Pool[] = [];
  const shadowDatabases: string[] = [];
  const connect = async (url: string): Promise<SqlDriverAdapter> => {
    const pool = new pg.Pool({ connectionString: url, Client: CatalogFriendlyClient });
    pool.on('error', () => {}); // idle-client errors: the next query reports the failure
    pools.push(pool);
    const adapter = await new PrismaPg(pool).connect();
    typeCharColumns(adapter);
    const startTransaction = adapter.startTransaction.bind(adapter);
    adapter.startTransaction = async (isolationLevel) => typeCharColumns(await startTransaction(isolationLevel));
    // PrismaPg splits scripts on every ";" (breaking semicolons in strings, comments and function
    // bodies) and runs the pieces one by one. As one simple query without parameters, the whole
    // migration runs in one implicit transaction instead, like with Prisma's native engine.
    adapter.executeScript = async (script) => {
      await adapter.executeRaw({ sql: script, args: [], argTypes: [] });
    };
    return adapter;
  };
  const factory: SqlMigrationAwareDriverAdapterFactory = {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: () => connect(databaseUrl),
    async connectToShadowDb() {
      const name = `kocmoc_shadow_${randomBytes(6).toString('hex')}`;
      await runSql(databaseUrl, `CREATE DATABASE ${quoteIdent(name)}`);
      shadowDatabases.push(name);
      return connect(withDatabase(databaseUrl, name));
    },
  };
  const close = async () => {
    // Pools first: a database cannot be dropped while we are connected to it.
    await Promise.all(pools.map((pool) => (pool.ended ? undefined : pool.end().catch(() => {}))));
    for (const name of shadowDatabases) {
      // Run from databaseUrl, like the CREATE. FORCE also ends sessions the engine might have left
      // behind. A failure here must not hide the engine's own error, so it is only reported.
      await dropDatabase(withDatabase(databaseUrl, name), databaseUrl).catch((error: Error) =>
        log(`could not drop shadow database ${name}: ${error.message}`),
      );
    }
  };
  return { factory, close };
}

// PostgreSQL's internal one-byte type "char" (pg_class.relkind, pg_constraint.contype, ...) is
// unsupported by PrismaPg, which rejects any result holding it, so the engine could not describe a
// database (the shadow database included; PostgreSQL 18 lists NOT NULL constraints there too).
// The engine reads these columns as characters: our pg client declares them as text so PrismaPg
// accepts them, remembering which columns they were (keyed by the rows array, which PrismaPg
// passes through), and typeCharColumns() marks those as Character in PrismaPg's result.
const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;
const charColumnsOfRows = new WeakMap<object, number[]>();

class CatalogFriendlyClient extends pg.Client {
  // pg.Client.query has many overloads (callback or promise); patch the result in all of them.
  override query(...args: any[]): any {
    const callbackIndex = args.findIndex((arg) => typeof arg === 'function');
    if (callbackIndex >= 0) {
      const callback = args[callbackIndex] as (error: unknown, result: unknown) => void;
      args[callbackIndex] = (error: unknown, result: unknown) => callback(error, error ? result : declareCharAsText(result));
      return (super.query as (...a: any[]) => any)(...args);
    }
    const result = (super.query as (...a: any[]) => any)(...args);
    return result instanceof Promise ? result.then(declareCharAsText) : result;
  }
}

function declareCharAsText(result: unknown): unknown {
  for (const one of (Array.isArray(result) ? result : [result]) as Array<Partial<pg.QueryResult> | undefined>) {
    const charColumns: number[] = [];
    one?.fields?.forEach((field, index) => {
      if (field.dataTypeID !== PG_CHAR_OID) return;
      field.dataTypeID = PG_TEXT_OID;
      charColumns.push(index);
    });
    if (charColumns.length > 0 && one?.rows) charColumnsOfRows.set(one.rows, charColumns);
  }
  return result;
}

function typeCharColumns<T extends SqlQueryable>(queryable: T): T {
  const queryRaw = queryable.queryRaw.bind(queryable);
  queryable.queryRaw = async (query) => {
    const result = await queryRaw(query);
    for (const index of charColumnsOfRows.get(result.rows) ?? []) result.columnTypes[index] = ColumnTypeEnum.Character;
    return result;
  };
  return queryable;
}
