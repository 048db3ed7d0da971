// Reactions: each user puts any emoji on a message once; a message carries at most
// REACTIONS_MAX_DISTINCT different emoji. Members react; in a direct chat a block stops it as it stops writing.
import { badUserInput } from '../errors.ts';
import type { Message } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { isSingleEmoji } from './emoji.ts';
import { requireVisibleMessage, writeRefusal } from './messages.ts';

type ReactionServices = Pick<Services, 'prisma' | 'events'>;

/** Different emoji one message can carry. */
export const REACTIONS_MAX_DISTINCT = 20;

function parseEmoji(emoji: string): string {
  if (!isSingleEmoji(emoji)) throw badUserInput('emoji', 'Give exactly one emoji (skin tones and ZWJ sequences are one emoji).');
  return emoji;
}

async function reactableMessage(services: ReactionServices, viewerId: string, messageId: string): Promise<Message> {
  const { message, membership } = await requireVisibleMessage(services, viewerId, messageId);
  if (membership.chat.encrypted) {
    throw badUserInput('messageId', 'This chat is end-to-end encrypted: the server keeps no plaintext reactions in it.');
  }
  if (message.deletedAt) throw badUserInput('messageId', 'Deleted messages take no reactions.');
  const { problem } = await writeRefusal(services.prisma, viewerId, message.chatId, null);
  if (problem) throw problem;
  return message;
}

/** Adds the viewer's `emoji` to the message; adding it again changes nothing. */
export async function addReaction(services: ReactionServices, viewerId: string, messageId: string, emoji: string): Promise<Message> {
  const { prisma } = services;
  const value = parseEmoji(emoji);
  const message = await reactableMessage(services, viewerId, String(messageId));
  // Locking the message first serialises additions to it (each statement of the transaction reads
  // anew), so two new emoji added at 19 cannot make 21. The lock leaves inserts' key-share locks free.
  const [, inserted] = await prisma.$transaction([
    prisma.$queryRaw`SELECT 1 FROM "Message" WHERE "id" = ${message.id} FOR NO KEY UPDATE`,
    prisma.$queryRaw<Array<{ count: number }>>`
      WITH added AS (
        INSERT INTO "MessageReaction" ("messageId", "emoji", "userId")
        SELECT ${message.id}, ${value}, ${viewerId}
        WHERE EXISTS (SELECT 1 FROM "MessageReaction" WHERE "messageId" = ${message.id} AND "emoji" = ${value})
           OR (SELECT count(DISTINCT "emoji") FROM "MessageReaction" WHERE "messageId" = ${message.id}) < ${REACTIONS_MAX_DISTINCT}
        ON CONFLICT DO NOTHING
        RETURNING 1
      )
      SELECT count(*)::int AS count FROM added`,
  ]);
  if (inserted[0]!.count > 0) {
    await services.events.message(message.chatId, 'REACTIONS_CHANGED', message);
    return message;
  }
  const already = await prisma.messageReaction.findUnique({
    where: { messageId_emoji_userId: { messageId: message.id, emoji: value, userId: viewerId } },
    select: { userId: true },
  });
  if (!already) throw badUserInput('emoji', `A message has at most ${REACTIONS_MAX_DISTINCT} different reactions.`);
  return message;
}

/** Takes the viewer's `emoji` off the message; removing one that is not there changes nothing. */
export async function removeReaction(services: ReactionServices, viewerId: string, messageId: string, emoji: string): Promise<Message> {
  const value = parseEmoji(emoji);
  const { message } = await requireVisibleMessage(services, viewerId, String(messageId));
  const { count } = await services.prisma.messageReaction.deleteMany({ where: { messageId: message.id, emoji: value, userId: viewerId } });
  if (count > 0) await services.events.message(message.chatId, 'REACTIONS_CHANGED', message);
  return message;
}
