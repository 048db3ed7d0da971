// Envelopes of end-to-end encrypted messages: one ciphertext per recipient device, stored as
// received. They are checked for shape only (the server cannot read them), addressed to exactly the
// devices of the chat, and deleted once their device has read them or after
// ENCRYPTED_ENVELOPE_RETENTION.
import { badUserInput, conflict } from '../errors.ts';
import { Prisma, type EnvelopeType, type PrismaClient } from '../generated/prisma/client.ts';
import { decodeBase64 } from '../devices/keys.ts';
import { startPeriodicJob } from '../periodic-job.ts';
import type { Services } from '../services.ts';

/** Largest ciphertext of one envelope, decoded: a long text, or an attachment's key and digest, with room to spare. */
export const ENVELOPE_MAX_BYTES = 64 * 1024;

export interface EnvelopeInput {
  deviceId: string | number;
  type: EnvelopeType;
  ciphertext: string;
}

/** Envelopes as columns, for one unnest() in SQL; ciphertexts stay base64, decoded by PostgreSQL. */
export interface ParsedEnvelopes {
  deviceIds: string[];
  types: EnvelopeType[];
  ciphertexts: string[];
}

export function parseEnvelopes(envelopes: readonly EnvelopeInput[], field = 'input.envelopes'): ParsedEnvelopes {
  const parsed: ParsedEnvelopes = { deviceIds: [], types: [], ciphertexts: [] };
  const seen = new Set<string>();
  envelopes.forEach((envelope, index) => {
    const deviceId = String(envelope.deviceId);
    if (seen.has(deviceId)) throw badUserInput(`${field}.${index}.deviceId`, `Device ${deviceId} has two envelopes: send one per device.`);
    seen.add(deviceId);
    const bytes = decodeBase64(envelope.ciphertext, `${field}.${index}.ciphertext`, 'ciphertext');
    if (bytes.length === 0 || bytes.length > ENVELOPE_MAX_BYTES) {
      throw badUserInput(`${field}.${index}.ciphertext`, `A ciphertext is 1 to ${ENVELOPE_MAX_BYTES} bytes.`);
    }
    parsed.deviceIds.push(deviceId);
    parsed.types.push(envelope.type);
    parsed.ciphertexts.push(envelope.ciphertext);
  });
  return parsed;
}

/** The devices a message in the chat must be addressed to: every current device of every member but the sending one. */
export const devicesToAddress = (chatId: string, senderDeviceId: string) => Prisma.sql`
    SELECT d."id", d."userId" FROM "ChatMember" m
    JOIN "Device" d ON d."userId" = m."userId"
    JOIN "Session" s ON s."id" = d."id" AND s."revokedAt" IS NULL AND s."expiresAt" > now()
    WHERE m."chatId" = ${chatId} AND d."id" <> ${senderDeviceId}`;

export interface AddressedDevice {
  id: string;
  userId: string;
}

export function expectedDevices(prisma: PrismaClient, chatId: string, senderDeviceId: string): Promise<AddressedDevice[]> {
  return prisma.$queryRaw<AddressedDevice[]>`${devicesToAddress(chatId, senderDeviceId)}`;
}

/**
 * CONFLICT naming the devices the envelopes miss (`missingDeviceIds`, and in `missingDevices` with
 * their users, for preKeyBundles(userId:, deviceIds:)) and those they should not address
 * (`extraDeviceIds`), so the client fetches bundles, drops the others and retries; null when they match.
 */
export function addressingConflict(expected: readonly AddressedDevice[], addressed: readonly string[]) {
  const given = new Set(addressed);
  const wanted = new Set(expected.map((device) => device.id));
  const missing = expected.filter((device) => !given.has(device.id));
  const extraDeviceIds = addressed.filter((id) => !wanted.has(id));
  if (missing.length === 0 && extraDeviceIds.length === 0) return null;
  return conflict(
    'input.envelopes',
    'The envelopes must address every current device of the chat (your other devices too) and no other: fetch bundles for missingDeviceIds, drop extraDeviceIds, and send again.',
    { missingDeviceIds: missing.map((device) => device.id), missingDevices: missing.map((device) => ({ deviceId: device.id, userId: device.userId })), extraDeviceIds },
  );
}

/** The reading device has the messages up to `seq` of the chat: their envelopes for it go. */
export async function deleteReadEnvelopes(prisma: PrismaClient, deviceId: string, chatId: string, seq: number): Promise<number> {
  return prisma.$executeRaw`
    DELETE FROM "MessageEnvelope" e USING "Message" m
    WHERE e."deviceId" = ${deviceId} AND m."id" = e."messageId" AND m."chatId" = ${chatId} AND m."seq" <= ${seq}`;
}

/** Envelopes per DELETE: short locks, bounded work per statement. */
const RETENTION_BATCH = 1_000;
export const ENVELOPE_CLEANUP_INTERVAL_MS = 60 * 60_000;

/** Deletes envelopes stored before `olderThan`, in batches; returns how many. */
export async function deleteExpiredEnvelopes({ prisma }: Pick<Services, 'prisma'>, olderThan: Date): Promise<number> {
  let total = 0;
  for (;;) {
    const deleted = await prisma.$executeRaw`
      DELETE FROM "MessageEnvelope" WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM "MessageEnvelope" WHERE "createdAt" < ${olderThan} LIMIT ${RETENTION_BATCH}))`;
    total += deleted;
    if (deleted < RETENTION_BATCH) return total;
  }
}

/** Runs deleteExpiredEnvelopes every hour; the returned function stops it (waiting for a round in progress). */
export function startEnvelopeCleanup(services: Pick<Services, 'prisma' | 'logger'>, retentionMs: number, intervalMs = ENVELOPE_CLEANUP_INTERVAL_MS) {
  return startPeriodicJob(services.logger, {
    intervalMs,
    run: () => deleteExpiredEnvelopes(services, new Date(Date.now() - retentionMs)),
    doneMessage: 'deleted envelopes past ENCRYPTED_ENVELOPE_RETENTION',
    failedMessage: 'envelope retention clean-up failed',
  });
}
