// Unread counts over all of a user's chats, for app badges (User.totalUnreadCount) and push
// payloads (src/notifications/jobs.ts): a module of its own, free of the services it would loop through.
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';

/**
 * Whether message `m` (an alias) counts as unread for `userId` once it is after their read position:
 * sent by someone else, not deleted, and on the main timeline. Thread replies are not counted (the
 * main timeline leaves them out, as Slack and Mattermost do); their mentions are (unreadMentionCount).
 * Counted, never kept as a counter, so the count is exact whatever is sent or read meanwhile.
 */
export const countsAsUnread = (m: string, userId: Prisma.Sql) => {
  const message = Prisma.raw(`"${m}"`);
  return Prisma.sql`${message}."senderId" <> ${userId} AND ${message}."deletedAt" IS NULL AND ${message}."threadRootId" IS NULL`;
};

/**
 * Messages unread by `userId` (a SQL expression) over all their chats: after their read position
 * and countsAsUnread. `Chat.unreadCount` summed, for app badges and push payloads.
 */
export const totalUnreadSql = (userId: Prisma.Sql) => Prisma.sql`(
  SELECT count(*)::int FROM "ChatMember" own
  JOIN "Message" unread ON unread."chatId" = own."chatId" AND unread."seq" > own."lastReadSeq"
  WHERE own."userId" = ${userId} AND ${countsAsUnread('unread', userId)})`;

export async function totalUnreadCount(prisma: PrismaClient, userId: string): Promise<number> {
  const [row] = await prisma.$queryRaw<Array<{ total: number }>>`SELECT ${totalUnreadSql(Prisma.sql`${userId}`)} AS total`;
  return row?.total ?? 0;
}
