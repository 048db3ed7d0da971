// Batch loaders for mentions: one query per page of messages (who they mention) or of chats (the
// viewer's unread mentions).
import DataLoader from 'dataloader';
import { Prisma, type PrismaClient, type User } from '../generated/prisma/client.ts';

export interface MessageMentions {
  /** Those named with @username, by username. */
  users: User[];
  /** Whether the message mentioned everyone with @all. */
  all: boolean;
}

export function createMentionLoaders(prisma: PrismaClient, viewerId: () => string | undefined) {
  return {
    mentions: new DataLoader<string, MessageMentions>(async (messageIds) => {
      const rows = await prisma.messageMention.findMany({
        where: { messageId: { in: [...messageIds] } },
        include: { user: true },
        orderBy: { user: { username: 'asc' } },
      });
      const byMessage = new Map<string, MessageMentions>(messageIds.map((id) => [id, { users: [], all: false }]));
      for (const row of rows) {
        const entry = byMessage.get(row.messageId)!;
        if (row.viaAll) entry.all = true;
        else entry.users.push(row.user);
      }
      return messageIds.map((id) => byMessage.get(id)!);
    }),

    /** Messages after the viewer's read position that mention the viewer and nobody deleted. */
    unreadMentionCount: new DataLoader<string, number>(async (chatIds) => {
      const mentionedId = viewerId();
      const counts = new Map<string, number>();
      if (mentionedId) {
        const rows = await prisma.$queryRaw<Array<{ chatId: string; mentions: number }>>`
          SELECT mm."chatId", count(*)::int AS mentions
          FROM "MessageMention" mm
          JOIN "ChatMember" cm ON cm."chatId" = mm."chatId" AND cm."userId" = mm."userId"
          JOIN "Message" m ON m."id" = mm."messageId"
          WHERE mm."userId" = ${mentionedId} AND mm."chatId" IN (${Prisma.join([...chatIds])})
            AND m."seq" > cm."lastReadSeq" AND m."deletedAt" IS NULL
          GROUP BY mm."chatId"`;
        for (const row of rows) counts.set(row.chatId, row.mentions);
      }
      return chatIds.map((id) => counts.get(id) ?? 0);
    }),
  };
}
