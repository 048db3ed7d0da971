import { Prisma } from '../generated/prisma/client.ts';

/** A unique-index violation, from a Prisma query (P2002) or a raw one (SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  if (!(error instanceof Prisma.PrismaClientKnownRequestError)) return false;
  if (error.code === 'P2002') return true;
  const meta = error.meta as { code?: string; driverAdapterError?: { cause?: { originalCode?: string; code?: string } } } | undefined;
  const cause = meta?.driverAdapterError?.cause;
  return meta?.code === '23505' || cause?.originalCode === '23505' || cause?.code === '23505';
}
