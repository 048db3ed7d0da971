// Pins: group owners and admins (either member of a direct chat) pin messages of their chat, at
// most PINS_MAX per chat; the chat's members hear MESSAGE_PINNED / MESSAGE_UNPINNED.
import { requireRole } from '../chats/membership.ts';
import { badUserInput } from '../errors.ts';
import type { Message } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { requireVisibleMessage, writeRefusal } from './messages.ts';

type PinServices = Pick<Services, 'prisma' | 'events'>;

/** Pinned messages one chat can have. */
export const PINS_MAX = 50;

async function requirePinner(services: PinServices, viewerId: string, messageId: string): Promise<Message> {
  const { message, membership } = await requireVisibleMessage(services, viewerId, messageId);
  if (membership.chat.kind === 'GROUP') requireRole(membership, ['OWNER', 'ADMIN'], 'pin and unpin messages');
  // Across a block in a direct chat nothing changes in it, as nothing is sent.
  const { problem } = await writeRefusal(services.prisma, viewerId, message.chatId, null);
  if (problem) throw problem;
  return message;
}

/** Pins the message in its chat; pinning it again changes nothing. */
export async function pinMessage(services: PinServices, viewerId: string, messageId: string): Promise<Message> {
  const { prisma } = services;
  const message = await requirePinner(services, viewerId, messageId);
  if (message.deletedAt) throw badUserInput('messageId', 'Deleted messages cannot be pinned.');
  // The chat's row lock makes the count and the insert one step: concurrent pins cannot pass PINS_MAX.
  const [, pinned] = await prisma.$transaction([
    prisma.$queryRaw`SELECT 1 FROM "Chat" WHERE "id" = ${message.chatId} FOR NO KEY UPDATE`,
    prisma.$queryRaw<Array<{ count: number }>>`
      WITH pinned AS (
        INSERT INTO "MessagePin" ("messageId", "chatId", "pinnedById")
        SELECT ${message.id}, ${message.chatId}, ${viewerId}
        WHERE (SELECT count(*) FROM "MessagePin" WHERE "chatId" = ${message.chatId}) < ${PINS_MAX}
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS count FROM pinned`,
  ]);
  if (pinned[0]!.count > 0) {
    await services.events.chat(message.chatId, 'MESSAGE_PINNED', viewerId, { messageId: message.id });
  } else if (!(await prisma.messagePin.findUnique({ where: { messageId: message.id }, select: { messageId: true } }))) {
    throw badUserInput('messageId', `A chat has at most ${PINS_MAX} pinned messages: unpin one first.`);
  }
  return message;
}

/** Unpins the message; unpinning one that is not pinned changes nothing. */
export async function unpinMessage(services: PinServices, viewerId: string, messageId: string): Promise<Message> {
  const message = await requirePinner(services, viewerId, messageId);
  const { count } = await services.prisma.messagePin.deleteMany({ where: { messageId: message.id } });
  if (count > 0) await services.events.chat(message.chatId, 'MESSAGE_UNPINNED', viewerId, { messageId: message.id });
  return message;
}
