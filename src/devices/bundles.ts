// Pre-key bundles (X3DH): what a client needs to open an encrypted session with each device of a
// user. Fetching them claims one one-time pre-key per device, and each such key is handed out at
// most once, ever: one DELETE ... RETURNING picks it under a row lock that concurrent claims skip
// (FOR UPDATE SKIP LOCKED), so on any number of instances no two callers get the same key, and none
// waits for another or gets nothing while a key nobody is taking is left.
import { forbidden, notFound } from '../errors.ts';
import type { Device, PrismaClient } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { ONE_TIME_PRE_KEYS_LOW } from './devices.ts';

type BundleServices = Pick<Services, 'prisma' | 'events' | 'rateLimits'>;

export interface PreKeyBundle {
  device: Device;
  /** The claimed one-time pre-key; null when the device had none left. */
  oneTimePreKey: { keyId: number; publicKey: Uint8Array } | null;
}

interface ClaimRow extends Device {
  claimedKeyId: number | null;
  claimedPublicKey: Uint8Array | null;
  /** One-time pre-keys the device has left after this claim (as this statement saw them). */
  remaining: number;
}

/**
 * Whether `targetId` exists, and whether a block stands between the two users: either blocked the
 * other and no group chat keeps them together (blocking leaves groups shared; README, Blocking).
 * One round trip: every bundle fetch asks.
 */
async function targetStanding(prisma: PrismaClient, viewerId: string, targetId: string) {
  const [row] = await prisma.$queryRaw<Array<{ exists: boolean; blocked: boolean }>>`
    SELECT EXISTS (SELECT 1 FROM "User" WHERE "id" = ${targetId}) AS exists,
      EXISTS (SELECT 1 FROM "UserBlock" b
        WHERE (b."blockerId" = ${viewerId} AND b."blockedId" = ${targetId}) OR (b."blockerId" = ${targetId} AND b."blockedId" = ${viewerId}))
      AND NOT EXISTS (
        SELECT 1 FROM "ChatMember" mine JOIN "ChatMember" theirs ON theirs."chatId" = mine."chatId"
        JOIN "Chat" c ON c."id" = mine."chatId"
        WHERE mine."userId" = ${viewerId} AND theirs."userId" = ${targetId} AND c."kind" = 'GROUP') AS blocked`;
  return row!;
}

/**
 * The bundles of `targetId`'s current devices (or of those among `deviceIds`), each with a freshly
 * claimed one-time pre-key if it had one. The viewer's own device is never among them. FORBIDDEN
 * between users who blocked one another (unless a group keeps them together); RATE_LIMITED past
 * the per-(claimer, target) limit.
 */
export async function claimPreKeyBundles(
  services: BundleServices,
  viewer: { userId: string; sessionId: string },
  targetId: string,
  deviceIds?: readonly string[] | null,
): Promise<PreKeyBundle[]> {
  const { prisma } = services;
  const target = await targetStanding(prisma, viewer.userId, targetId);
  if (!target.exists) throw notFound('User');
  if (target.blocked) throw forbidden("You cannot fetch this user's keys.");
  // Per pair, as Signal does: nobody can drain a device's one-time pre-keys.
  await services.rateLimits.consume('preKeyBundles', `${viewer.userId}:${targetId}`);

  const only = deviceIds ? [...new Set(deviceIds)] : null;
  const rows = await prisma.$queryRaw<ClaimRow[]>`
    WITH devices AS (
      SELECT d.* FROM "Device" d JOIN "Session" s ON s."id" = d."id"
      WHERE d."userId" = ${targetId} AND d."id" <> ${viewer.sessionId}
        AND s."revokedAt" IS NULL AND s."expiresAt" > now()
        AND (${only}::text[] IS NULL OR d."id" = ANY(${only}::text[]))
    ), picked AS (
      SELECT k."deviceId", k."keyId" FROM devices d CROSS JOIN LATERAL (
        SELECT "deviceId", "keyId" FROM "OneTimePreKey" WHERE "deviceId" = d."id"
        ORDER BY "keyId" LIMIT 1 FOR UPDATE SKIP LOCKED
      ) k
    ), claimed AS (
      DELETE FROM "OneTimePreKey" k USING picked p
      WHERE k."deviceId" = p."deviceId" AND k."keyId" = p."keyId"
      RETURNING k."deviceId", k."keyId", k."publicKey"
    )
    SELECT d.*, c."keyId" AS "claimedKeyId", c."publicKey" AS "claimedPublicKey",
      (SELECT count(*)::int FROM "OneTimePreKey" r WHERE r."deviceId" = d."id") - (c."keyId" IS NOT NULL)::int AS "remaining"
    FROM devices d LEFT JOIN claimed c ON c."deviceId" = d."id"
    ORDER BY d."createdAt", d."id"`;

  // Only a claim can bring a device below the mark, so only a claim tells it (each time, with the count).
  for (const row of rows) {
    if (row.claimedKeyId !== null && row.remaining < ONE_TIME_PRE_KEYS_LOW) {
      await services.events.oneTimePreKeysLow(targetId, row.id, Math.max(0, row.remaining));
    }
  }
  return rows.map(({ claimedKeyId, claimedPublicKey, remaining: _remaining, ...device }) => ({
    device,
    oneTimePreKey: claimedKeyId === null ? null : { keyId: claimedKeyId, publicKey: claimedPublicKey! },
  }));
}
