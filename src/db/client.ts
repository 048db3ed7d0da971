import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export interface PrismaOptions {
  /** Connections in this process's pool. Default 10. */
  poolSize?: number;
  /** Called with each SQL statement; tests count queries with it. */
  onQuery?: (sql: string) => void;
}

export function createPrisma(databaseUrl: string, { poolSize = 10, onQuery }: PrismaOptions = {}) {
  const adapter = new PrismaPg({ connectionString: databaseUrl, max: poolSize });
  const prisma = new PrismaClient({ adapter, log: onQuery ? [{ emit: 'event', level: 'query' }] : [] });
  if (onQuery) (prisma as unknown as QueryEvents).$on('query', (event) => onQuery(event.query));
  return prisma;
}

interface QueryEvents {
  $on(event: 'query', listener: (event: { query: string }) => void): void;
}
