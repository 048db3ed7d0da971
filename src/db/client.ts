import { createHash } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';
import { tracedPool } from './traced-pool.ts';

export interface PrismaOptions {
  /** Connections in this process's pool. Default 10. */
  poolSize?: number;
  /** Called with each SQL statement; tests count queries with it. */
  onQuery?: (sql: string) => void;
  /**
   * Whether often-run statements are prepared by name on each connection. Default true; false
   * through a transaction-mode pooler, where the next statement may reach a connection that never
   * prepared it (or one where another client already did).
   */
  preparedStatements?: boolean;
  /** With tracing on: every SQL statement is a `db.query` span. */
  tracer?: Tracer;
}

export function createPrisma(databaseUrl: string, { poolSize = 10, onQuery, preparedStatements = true, tracer }: PrismaOptions = {}) {
  const poolConfig = { connectionString: databaseUrl, max: poolSize };
  const pool = tracer ? tracedPool(poolConfig, tracer) : new pg.Pool(poolConfig);
  // Every query (or transaction) gives its connection back once the database has answered it; one
  // given back with an error (a connection lost mid-query) is no answer.
  let answered = 0;
  pool.on('release', (error: Error | undefined) => {
    if (!error) answered++;
  });
  const adapter = new PrismaPg(pool, {
    // Our pool, ended with the client ($disconnect), as the adapter would end one of its own.
    disposeExternalPool: true,
    // Typed as always naming; pg runs an undefined name as an unnamed statement.
    ...(preparedStatements ? { statementNameGenerator: preparedStatementNames() as (query: { sql: string }) => string } : {}),
  });
  const prisma = new PrismaClient({ adapter, log: onQuery ? [{ emit: 'event', level: 'query' }] : [] });
  if (onQuery) (prisma as unknown as QueryEvents).$on('query', (event) => onQuery(event.query));
  answeredCounts.set(prisma, () => answered);
  return prisma;
}

const answeredCounts = new WeakMap<object, () => number>();

/**
 * How many statements the database has answered on this client's pool so far (undefined for a
 * client createPrisma did not make). A read that waits while this grows is queued behind others
 * for a pooled connection: the database is busy, not out of reach (see realtime/retry.ts).
 */
export function databaseAnswers(prisma: object): (() => number) | undefined {
  return answeredCounts.get(prisma);
}

interface QueryEvents {
  $on(event: 'query', listener: (event: { query: string }) => void): void;
}

/** Distinct SQL texts that become prepared statements; later ones run unnamed (parsed each time). */
const MAX_PREPARED_STATEMENTS = 500;

/**
 * Names each distinct SQL text, so every connection parses and plans it once and then only binds
 * and executes (less PostgreSQL CPU per query). The cap bounds what each
 * connection keeps when SQL varies without end (e.g. IN lists of every length).
 */
function preparedStatementNames() {
  const names = new Map<string, string>();
  return ({ sql }: { sql: string }): string | undefined => {
    const known = names.get(sql);
    if (known !== undefined || names.size >= MAX_PREPARED_STATEMENTS) return known;
    const name = `k${createHash('sha1').update(sql).digest('base64url')}`;
    names.set(sql, name);
    return name;
  };
}
