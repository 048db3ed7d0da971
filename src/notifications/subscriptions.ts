// Registering devices for push, and muting chats.
import { z } from 'zod';
import { requireMembership } from '../chats/membership.ts';
import type { Viewer } from '../auth/authenticate.ts';
import type { Services } from '../services.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { badUserInput, conflict } from '../errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { parseInput } from '../validation.ts';

const base64url = (bytes: number, what: string) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_-]+={0,2}$/, `${what} must be base64url.`)
    .refine((value) => Buffer.from(value, 'base64url').length === bytes, `${what} must be ${bytes} bytes.`);

const keysSchema = z.object({
  // An uncompressed P-256 point (RFC 8291 §3.2) and a 16-byte auth secret.
  p256dh: base64url(65, 'keys.p256dh').refine((v) => Buffer.from(v, 'base64url')[0] === 4, 'keys.p256dh must be an uncompressed P-256 key.'),
  auth: base64url(16, 'keys.auth'),
});

export interface PushSubscriptionInput {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

const endpointTaken = () => conflict('input.endpoint', 'This push endpoint is registered by another account.');

/**
 * Registers this device session's push subscription. The same endpoint again updates it and moves
 * it to this session, from another session of the viewer's or from one that has ended; while
 * another account's session is live it stays theirs (CONFLICT), so nobody takes over someone
 * else's device by replaying its endpoint.
 */
export async function registerPushSubscription({ prisma, notifications }: Pick<Services, 'prisma' | 'notifications'>, viewer: Viewer, input: PushSubscriptionInput) {
  const endpoint = (await notifications.checkEndpoint(input.endpoint)).toString();
  const keys = parseInput(keysSchema, input.keys, 'input.keys');
  const data = { userId: viewer.userId, sessionId: viewer.sessionId, p256dh: keys.p256dh, auth: keys.auth };
  const ended = { OR: [{ revokedAt: { not: null } }, { expiresAt: { lte: new Date() } }] } satisfies Prisma.SessionWhereInput;
  const { count } = await prisma.pushSubscription.updateMany({ where: { endpoint, OR: [{ userId: viewer.userId }, { session: ended }] }, data });
  if (count === 0) {
    try {
      return await prisma.pushSubscription.create({ data: { endpoint, ...data } });
    } catch (error) {
      // Held by another account's live session (or registered by one a moment ago).
      if (isUniqueViolation(error)) throw endpointTaken();
      throw error;
    }
  }
  return prisma.pushSubscription.findUniqueOrThrow({ where: { endpoint } });
}

/** Whether the viewer had that subscription. */
export async function unregisterPushSubscription({ prisma }: Pick<Services, 'prisma'>, viewer: Viewer, endpoint: string) {
  const { count } = await prisma.pushSubscription.deleteMany({ where: { endpoint, userId: viewer.userId } });
  return count > 0;
}

/** Far enough to mean "until unmuted". */
const FOREVER = new Date('9999-12-31T00:00:00Z');

/** Mutes a chat's notifications for the viewer until `until` (or until unmuted). */
export async function muteChat({ prisma }: Pick<Services, 'prisma'>, viewerId: string, chatId: string, until: Date | null | undefined) {
  await requireMembership(prisma, chatId, viewerId);
  if (until && until.getTime() <= Date.now()) throw badUserInput('until', 'until must be in the future.');
  await prisma.chatMember.update({ where: { chatId_userId: { chatId, userId: viewerId } }, data: { mutedUntil: until ?? FOREVER } });
}

export async function unmuteChat({ prisma }: Pick<Services, 'prisma'>, viewerId: string, chatId: string) {
  await requireMembership(prisma, chatId, viewerId);
  await prisma.chatMember.update({ where: { chatId_userId: { chatId, userId: viewerId } }, data: { mutedUntil: null } });
}
