// Unread counts over all of a user's chats, for app badges (User.totalUnreadCount) and push
// payloads (src/notifications/jobs.ts): a module of its own, free of the services it would loop through.
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';

/**
 * Messages unread by `userId` (a SQL expression) over all their chats: after their read position,
 * sent by others and not deleted. `Chat.unreadCount` summed, for app badges and push payloads.
 */
export const totalUnreadSql = (userId: Prisma.Sql) => Prisma.sql`(
  SELECT count(*)::int FROM "ChatMember" own
  JOIN "Message" unread ON unread."chatId" = own."chatId" AND unread."seq" > own."lastReadSeq"
  WHERE own."userId" = ${userId} AND unread."senderId" <> ${userId} AND unread."deletedAt" IS NULL)`;

export async function totalUnreadCount(prisma: PrismaClient, userId: string): Promise<number> {
  const [row] = await prisma.$queryRaw<Array<{ total: number }>>`SELECT ${totalUnreadSql(Prisma.sql`${userId}`)} AS total`;
  return row?.total ?? 0;
}
