// The PostgreSQL settings beyond DATABASE_URL that src/env.ts validates: a transaction-mode pooler
// (PgBouncer) in front of the database, the direct connection what needs a session uses, and the
// size of each process's pool. README "Scaling out" has the pool arithmetic.
import { z } from 'zod';
import { optionalString } from '../env-fields.ts';

const postgresUrl = optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional());

export const databaseSettings = {
  /**
   * PostgreSQL itself, past any pooler in DATABASE_URL: what needs one session for its whole run uses
   * it (migrations hold an advisory lock). Required with DATABASE_POOL_MODE=transaction. Unset: DATABASE_URL.
   */
  DATABASE_DIRECT_URL: postgresUrl,
  /**
   * `session` (default): DATABASE_URL keeps a server connection per client connection, and each
   * connection prepares the statements it runs often. `transaction`: DATABASE_URL is a
   * transaction-mode pooler (PgBouncer `pool_mode = transaction`), where consecutive statements of
   * one client may run on different server connections, so statements are not prepared by name.
   */
  DATABASE_POOL_MODE: z.enum(['session', 'transaction']).default('session'),
  /** Connections in each API process's pool (the worker: min(WORKER_CONCURRENCY, 20)). Default 10. */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(1_000).default(10),
  /**
   * Streaming replicas for read-only queries (history pages, search, profiles), comma-separated
   * PostgreSQL URLs; each API process opens a pool of DATABASE_POOL_SIZE to each. Unset: none.
   */
  DATABASE_REPLICA_URLS: optionalString.transform((value, ctx) => {
    const urls = (value ?? '').split(',').map((url) => url.trim()).filter(Boolean);
    for (const url of urls) if (!postgresUrl.safeParse(url).success) ctx.addIssue({ code: 'custom', message: `not a postgresql:// URL: "${url}"` });
    return urls;
  }),
  /** After a session's mutation, its reads go to the primary for this long (read-your-writes over replica lag), on every instance when Redis is configured. Default 2. */
  REPLICA_STICKY_SECONDS: z.coerce.number().min(0).max(3_600).default(2),
};

type DatabaseEnv = z.output<z.ZodObject<typeof databaseSettings>> & { DATABASE_URL?: string };

export function databaseSettingsIssues(env: DatabaseEnv): string[] {
  return env.DATABASE_POOL_MODE === 'transaction' && !env.DATABASE_DIRECT_URL
    ? ['  DATABASE_DIRECT_URL: required with DATABASE_POOL_MODE=transaction (migrations need a session of their own)']
    : [];
}

export function toDatabasePoolConfig(env: DatabaseEnv) {
  return {
    /** Undefined: DATABASE_URL (or the embedded server) is direct. */
    directUrl: env.DATABASE_DIRECT_URL,
    /** Whether connections may prepare named statements (not through a transaction-mode pooler). */
    preparedStatements: env.DATABASE_POOL_MODE === 'session',
    poolSize: env.DATABASE_POOL_SIZE,
    replicaUrls: env.DATABASE_REPLICA_URLS,
    replicaStickyMs: Math.round(env.REPLICA_STICKY_SECONDS * 1000),
  };
}
