// exportMyData, the GDPR right of access: the account's data as one JSON file (data-export-document.ts),
// stored encrypted like uploads, downloadable by its user alone through a signed link (or their
// token) at /exports/<id> until DATA_EXPORT_TTL has passed; the account clean-up then deletes it.
// At most one export a day per user: building one reads and decrypts everything they ever sent.
import { forEachIdBatch } from '../db/keyset.ts';
import { rateLimited, withHttpStatus } from '../errors.ts';
import { deleteStoredBytes } from '../files/cleanup.ts';
import { writeEncryptedFile } from '../files/encrypted-files.ts';
import { signedFileUrl } from '../files/signed-urls.ts';
import type { DataExport, Prisma, PrismaClient } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import type { Services } from '../services.ts';
import { exportDocument } from './data-export-document.ts';

type ExportServices = Pick<Services, 'prisma' | 'cipher' | 'storage' | 'config' | 'logger'>;

/** One export per user per this long. */
export const DATA_EXPORT_INTERVAL_MS = 24 * 60 * 60_000;
/** Rows per deleting statement. */
const BATCH = 200;

/** Where an export's bytes are kept: derived from its id, so unique like it (and unlike any upload's). */
const exportStorageKey = (exportId: string) => `${exportId}.export`;

/**
 * Builds and stores an export of the user's data; returns a signed link to download it (relative to
 * the API origin, valid as long as the export). RATE_LIMITED, with retryAfterSeconds, within a day of
 * the previous one; an export that fails does not count.
 */
export async function exportMyData(services: ExportServices, userId: string, now = new Date()): Promise<string> {
  const { prisma, storage, config } = services;
  const previous = await claimTodaysExport(prisma, userId, now);
  const id = uuidv7();
  const storageKey = exportStorageKey(id);
  let stored = false;
  try {
    const pieces = await exportDocument(services, userId, now);
    const size = pieces.reduce((total, piece) => total + piece.byteLength, 0);
    const { keyId } = await writeEncryptedFile(storage, config.messageEncryption, storageKey, pieces, size);
    stored = true;
    // Whole seconds, as the link counts them: the file and its link end together.
    const expires = Math.floor((now.getTime() + config.files.exportTtlMs) / 1_000);
    await prisma.dataExport.create({ data: { id, userId, storageKey, contentKeyId: keyId, size, createdAt: now, expiresAt: new Date(expires * 1_000) } });
    return signedFileUrl(config.auth.jwtSecret, { attachmentId: id, variant: 'export', viewerId: userId, expires });
  } catch (error) {
    if (stored) await deleteStoredBytes(services, [{ storageKey }]);
    await prisma.user.updateMany({ where: { id: userId, dataExportedAt: now }, data: { dataExportedAt: previous } });
    throw error;
  }
}

/** Records today's export, or refuses when there was one within a day; returns the previous time. */
async function claimTodaysExport(prisma: PrismaClient, userId: string, now: Date): Promise<Date | null> {
  const { dataExportedAt: previous } = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { dataExportedAt: true } });
  if (previous && now.getTime() - previous.getTime() < DATA_EXPORT_INTERVAL_MS) {
    throw tooSoon(previous.getTime() + DATA_EXPORT_INTERVAL_MS - now.getTime());
  }
  // Compare-and-set: of two requests at once, one claims the day and the other is refused.
  const { count } = await prisma.user.updateMany({ where: { id: userId, dataExportedAt: previous }, data: { dataExportedAt: now } });
  if (count === 0) throw tooSoon(DATA_EXPORT_INTERVAL_MS);
  return previous;
}

function tooSoon(waitMs: number) {
  const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1_000));
  return withHttpStatus(rateLimited('Your data can be exported once a day. Try again later.', retryAfterSeconds), 429, {
    'Retry-After': String(retryAfterSeconds),
  });
}

/** The export when `viewerId` may download it (their own, not expired); null otherwise, as if there were none. */
export async function findDownloadableExport(prisma: PrismaClient, exportId: string, viewerId: string, now = new Date()): Promise<DataExport | null> {
  return prisma.dataExport.findFirst({ where: { id: exportId, userId: viewerId, expiresAt: { gt: now } } });
}

/** Deletes exports (rows, then their bytes) matching `where`; returns how many. */
export async function deleteExports(services: Pick<Services, 'prisma' | 'storage' | 'logger'>, where: Prisma.DataExportWhereInput): Promise<number> {
  const { prisma } = services;
  return forEachIdBatch(
    (after, take) => prisma.dataExport.findMany({ where: { ...where, id: { gt: after } }, select: { id: true }, orderBy: { id: 'asc' }, take }),
    BATCH,
    async (ids) => {
      const removed = await prisma.$queryRaw<Array<{ storageKey: string }>>`DELETE FROM "DataExport" WHERE "id" = ANY(${ids}) RETURNING "storageKey"`;
      await deleteStoredBytes(services, removed);
      return removed.length;
    },
  );
}
