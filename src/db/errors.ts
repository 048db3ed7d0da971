import { Prisma } from '../generated/prisma/client.ts';

/** Whether a Prisma error is `prismaCode`, or a raw query's failure with SQLSTATE `sqlState`. */
function isDatabaseError(error: unknown, prismaCode: string, sqlState: string): boolean {
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return false;
  if (error.code === prismaCode) return true;
  const meta = error.meta as { code?: string; driverAdapterError?: { cause?: { originalCode?: string; code?: string } } } | undefined;
  const cause = meta?.driverAdapterError?.cause;
  return meta?.code === sqlState || cause?.originalCode === sqlState || cause?.code === sqlState;
}

/** A unique-index violation (P2002 / SQLSTATE 23505). */
export const isUniqueViolation = (error: unknown) => isDatabaseError(error, 'P2002', '23505');

/** A foreign-key violation (P2003 / SQLSTATE 23503): the referenced row is gone. */
export const isForeignKeyViolation = (error: unknown) => isDatabaseError(error, 'P2003', '23503');

/** Prisma's codes for a server it cannot reach, a connection it lost, or no free pool connection in time. */
const UNREACHABLE_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);
/** The driver adapter's kinds of the same. */
const UNREACHABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
/** What pg says when a connection ends under it, before any SQLSTATE: no code to go by. */
const LOST_CONNECTION = /Connection terminated|ECONNREFUSED|ECONNRESET|timeout exceeded when trying to connect/i;

/**
 * Whether an error means PostgreSQL is out of reach for now (restarting, refusing connections, or it
 * ended ours), so the same work is worth trying again shortly. FATAL is how PostgreSQL ends a
 * session (pg_terminate_backend, shutdown, a database not accepting connections); class 08 and
 * 57P are connection failures and shutdowns by SQLSTATE.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error instanceof Prisma.PrismaClientKnownRequestError) {
    if (UNREACHABLE_CODES.has(error.code)) return true;
    const cause = (error.meta as { driverAdapterError?: { cause?: { kind?: string; code?: string; severity?: string } } } | undefined)
      ?.driverAdapterError?.cause;
    if (cause?.kind && UNREACHABLE_KINDS.has(cause.kind)) return true;
    if (cause?.severity === 'FATAL' || cause?.severity === 'PANIC') return true;
    if (cause?.code && (cause.code.startsWith('08') || cause.code.startsWith('57P'))) return true;
  }
  if (error instanceof Prisma.PrismaClientInitializationError) return true;
  return LOST_CONNECTION.test(error.message);
}
