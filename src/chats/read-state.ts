// Read state that follows the user: a read position that moved is told to all the user's
// connections (readStateEvents: badges clear on every device at once) and, in chats small enough
// for read receipts, to the members (READ_BY_CHANGED on messageEvents: "seen by" without polling).
import { READ_RECEIPTS_MAX_MEMBERS } from '../loaders.ts';
import type { Services } from '../services.ts';

export async function announceRead(
  { prisma, events }: Pick<Services, 'prisma' | 'events'>,
  userId: string,
  chatId: string,
  message: { id: string; seq: number },
) {
  await events.readState(userId, { chatId, lastReadSeq: message.seq });
  const members = await prisma.chatMember.count({ where: { chatId } });
  if (members <= READ_RECEIPTS_MAX_MEMBERS) await events.message(chatId, 'READ_BY_CHANGED', message, { readerId: userId });
}
