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
