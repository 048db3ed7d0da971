// Typing signals: members only, and each one ends by itself after TYPING_TTL unless refreshed.
import type { Services } from '../services.ts';
import { requireMembership } from './membership.ts';

/** Tells the chat's other members that `userId` is (or stopped) typing. NOT_FOUND for non-members. */
export async function setTyping(
  { prisma, events, config }: Pick<Services, 'prisma' | 'events' | 'config'>,
  userId: string,
  chatId: string,
  isTyping: boolean,
): Promise<void> {
  await requireMembership(prisma, chatId, userId);
  await events.typing(chatId, userId, isTyping, Date.now() + config.realtime.typingTtlMs);
}
