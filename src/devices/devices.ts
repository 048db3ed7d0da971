// Devices: the end-to-end encryption keys of one device session. A device uploads its identity
// key, a signed pre-key and one-time pre-keys; others read them as pre-key bundles (bundles.ts).
// A device lives as long as its session: ending the session removes it and its keys.
import { conflict, badUserInput, unauthenticated } from '../errors.ts';
import type { Device, Prisma, PrismaClient } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { decodeBase64, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifyEd25519 } from './keys.ts';

type DeviceServices = Pick<Services, 'prisma' | 'events'>;

/** One-time pre-keys a device may have stored at once. */
export const ONE_TIME_PRE_KEYS_MAX = 200;
/** Below this many one-time pre-keys, a device is told to upload more (ONE_TIME_PRE_KEYS_LOW). */
export const ONE_TIME_PRE_KEYS_LOW = 10;
/** Devices with keys one user may have: every encrypted message to them carries one envelope per device. */
export const DEVICES_PER_USER_MAX = 20;
/** Key ids are what clients number them with (libsignal: 24 bits); any non-negative GraphQL Int. */
const KEY_ID_MAX = 2_147_483_647;

/** Devices whose session is still live: an expired session's device is no device any more. */
export const currentDevice = (now = new Date()) =>
  ({ session: { revokedAt: null, expiresAt: { gt: now } } }) satisfies Prisma.DeviceWhereInput;

export interface PreKeyInput {
  keyId: number;
  publicKey: string;
}

export interface UploadDeviceKeysInput {
  identityKey: string;
  signedPreKey: PreKeyInput & { signature: string };
  oneTimePreKeys?: readonly PreKeyInput[] | null;
}

interface ParsedKeys {
  identityKey: Uint8Array<ArrayBuffer>;
  signedPreKey: { keyId: number; publicKey: Uint8Array<ArrayBuffer>; signature: Uint8Array<ArrayBuffer> };
  oneTimePreKeys: Array<{ keyId: number; publicKey: Uint8Array<ArrayBuffer> }>;
}

const bytes = (buffer: Buffer) => new Uint8Array(buffer) as Uint8Array<ArrayBuffer>;
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

function keyId(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > KEY_ID_MAX) throw badUserInput(field, 'keyId must be a non-negative integer.');
  return value;
}

/** Shapes first (BAD_USER_INPUT), then the signature: nothing is stored that does not check. */
function parseKeys(input: UploadDeviceKeysInput): ParsedKeys {
  const identityKey = decodeBase64(input.identityKey, 'input.identityKey', 'identityKey', PUBLIC_KEY_BYTES);
  const spk = input.signedPreKey;
  const signedPreKey = {
    keyId: keyId(spk.keyId, 'input.signedPreKey.keyId'),
    publicKey: decodeBase64(spk.publicKey, 'input.signedPreKey.publicKey', 'signedPreKey.publicKey', PUBLIC_KEY_BYTES),
    signature: decodeBase64(spk.signature, 'input.signedPreKey.signature', 'signedPreKey.signature', SIGNATURE_BYTES),
  };
  const oneTime = input.oneTimePreKeys ?? [];
  if (oneTime.length > ONE_TIME_PRE_KEYS_MAX) {
    throw badUserInput('input.oneTimePreKeys', `At most ${ONE_TIME_PRE_KEYS_MAX} one-time pre-keys are stored per device.`);
  }
  const oneTimePreKeys = oneTime.map((key, index) => ({
    keyId: keyId(key.keyId, `input.oneTimePreKeys.${index}.keyId`),
    publicKey: bytes(decodeBase64(key.publicKey, `input.oneTimePreKeys.${index}.publicKey`, 'A one-time pre-key', PUBLIC_KEY_BYTES)),
  }));
  const ids = oneTimePreKeys.map((key) => key.keyId);
  const repeated = [...new Set(ids.filter((id, index) => ids.indexOf(id) !== index))];
  if (repeated.length > 0) {
    throw conflict('input.oneTimePreKeys', `One-time pre-key ids must be unique: ${repeated.join(', ')} repeat.`, { duplicateKeyIds: repeated });
  }
  if (!verifyEd25519(identityKey, signedPreKey.publicKey, signedPreKey.signature)) {
    throw badUserInput('input.signedPreKey.signature', 'The signature does not verify: sign the 32 raw bytes of signedPreKey.publicKey with the identity key (Ed25519).');
  }
  return {
    identityKey: bytes(identityKey),
    signedPreKey: { keyId: signedPreKey.keyId, publicKey: bytes(signedPreKey.publicKey), signature: bytes(signedPreKey.signature) },
    oneTimePreKeys,
  };
}

/**
 * Stores the keys of the viewer's device session. The first call creates the device (and tells
 * everyone sharing a chat with the viewer, DEVICES_CHANGED); later calls with the same identity
 * key replace the signed pre-key and add one-time pre-keys. A different identity key is CONFLICT:
 * a new identity is a new device session.
 */
export async function uploadDeviceKeys(
  services: DeviceServices,
  viewer: { userId: string; sessionId: string },
  input: UploadDeviceKeysInput,
): Promise<Device> {
  const keys = parseKeys(input);
  const { userId, sessionId } = viewer;
  const { device, created } = await services.prisma.$transaction(async (tx) => {
    // The session row's lock serialises uploads of one session, and an upload with the session's
    // revocation (which updates that row, then removes the device): no device outlives its session.
    const [session] = await tx.$queryRaw<Array<{ id: string }>>`
      SELECT "id" FROM "Session" WHERE "id" = ${sessionId} AND "revokedAt" IS NULL AND "expiresAt" > now() FOR NO KEY UPDATE`;
    if (!session) throw unauthenticated('SESSION_ENDED', 'Session has ended. Sign in again.');
    const existing = await tx.device.findUnique({ where: { id: sessionId } });
    const device = existing ? await updateSignedPreKey(tx, existing, keys) : await createDevice(tx, userId, sessionId, keys);
    await addOneTimePreKeys(tx, device.id, keys.oneTimePreKeys);
    return { device, created: !existing };
  });
  if (created) await notifyDevicesChanged(services, userId);
  return device;
}

async function createDevice(tx: Prisma.TransactionClient, userId: string, sessionId: string, keys: ParsedKeys) {
  // Serialises the user's new devices, so two at once cannot pass the limit together.
  await tx.$queryRaw`SELECT 1 FROM "User" WHERE "id" = ${userId} FOR NO KEY UPDATE`;
  const devices = await tx.device.count({ where: { userId, ...currentDevice() } });
  if (devices >= DEVICES_PER_USER_MAX) {
    throw conflict('input.identityKey', `You have ${devices} devices with keys, the most there can be: end one of them first (revokeSession).`);
  }
  const { signedPreKey } = keys;
  return tx.device.create({
    data: {
      id: sessionId,
      userId,
      identityKey: keys.identityKey,
      signedPreKeyId: signedPreKey.keyId,
      signedPreKey: signedPreKey.publicKey,
      signedPreKeySignature: signedPreKey.signature,
    },
  });
}

async function updateSignedPreKey(tx: Prisma.TransactionClient, device: Device, keys: ParsedKeys) {
  if (!sameBytes(device.identityKey, keys.identityKey)) {
    throw conflict('input.identityKey', 'This device already has another identity key. A new identity needs a new device session: sign in again.');
  }
  const { signedPreKey } = keys;
  if (device.signedPreKeyId === signedPreKey.keyId) {
    if (!sameBytes(device.signedPreKey, signedPreKey.publicKey)) {
      throw conflict('input.signedPreKey.keyId', `Signed pre-key ${signedPreKey.keyId} is already stored with another key: give a new key a new keyId.`);
    }
    return device;
  }
  return tx.device.update({
    where: { id: device.id },
    data: {
      signedPreKeyId: signedPreKey.keyId,
      signedPreKey: signedPreKey.publicKey,
      signedPreKeySignature: signedPreKey.signature,
      signedPreKeyUpdatedAt: new Date(),
    },
  });
}

async function addOneTimePreKeys(tx: Prisma.TransactionClient, deviceId: string, keys: ParsedKeys['oneTimePreKeys']) {
  if (keys.length === 0) return;
  const taken = await tx.oneTimePreKey.findMany({
    where: { deviceId, keyId: { in: keys.map((key) => key.keyId) } },
    select: { keyId: true },
    orderBy: { keyId: 'asc' },
  });
  if (taken.length > 0) {
    const ids = taken.map((key) => key.keyId);
    throw conflict('input.oneTimePreKeys', `One-time pre-keys ${ids.join(', ')} are already stored: give new keys new ids.`, { duplicateKeyIds: ids });
  }
  const stored = await tx.oneTimePreKey.count({ where: { deviceId } });
  if (stored + keys.length > ONE_TIME_PRE_KEYS_MAX) {
    throw badUserInput(
      'input.oneTimePreKeys',
      `At most ${ONE_TIME_PRE_KEYS_MAX} one-time pre-keys are stored per device: ${stored} are, so at most ${ONE_TIME_PRE_KEYS_MAX - stored} more.`,
    );
  }
  await tx.oneTimePreKey.createMany({ data: keys.map((key) => ({ deviceId, ...key })) });
}

/** The user and everyone who shares a chat with them: who must know when their devices change. */
export async function deviceAudience(prisma: PrismaClient, userId: string): Promise<string[]> {
  const rows = await prisma.$queryRaw<Array<{ userId: string }>>`
    SELECT DISTINCT other."userId" FROM "ChatMember" mine
    JOIN "ChatMember" other ON other."chatId" = mine."chatId"
    WHERE mine."userId" = ${userId}`;
  return [...new Set([userId, ...rows.map((row) => row.userId)])];
}

async function notifyDevicesChanged(services: DeviceServices, userId: string) {
  await services.events.devicesChanged(userId, await deviceAudience(services.prisma, userId));
}

/**
 * Removes the devices of ended sessions, with their one-time pre-keys and the envelopes waiting
 * for them (by cascade), and tells their users' chat partners. Called by revokeSessions.
 */
export async function removeDevicesOfSessions(services: DeviceServices, sessionIds: readonly string[]): Promise<void> {
  if (sessionIds.length === 0) return;
  const removed = await services.prisma.$queryRaw<Array<{ userId: string }>>`
    DELETE FROM "Device" WHERE "id" = ANY(${[...sessionIds]}) RETURNING "userId"`;
  for (const userId of new Set(removed.map((row) => row.userId))) await notifyDevicesChanged(services, userId);
}

/**
 * Removes every device of a user (deleting an account, #14): call it while the user's chat
 * memberships still exist, so their partners hear DEVICES_CHANGED. Returns the removed device ids.
 */
export async function deleteDevicesOfUser(services: DeviceServices, userId: string): Promise<string[]> {
  const removed = await services.prisma.$queryRaw<Array<{ id: string }>>`DELETE FROM "Device" WHERE "userId" = ${userId} RETURNING "id"`;
  if (removed.length > 0) await notifyDevicesChanged(services, userId);
  return removed.map((row) => row.id);
}
