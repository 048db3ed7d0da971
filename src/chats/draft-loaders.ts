// The viewer's drafts of a page of chats: one query.
import DataLoader from 'dataloader';
import type { ChatDraft, PrismaClient } from '../generated/prisma/client.ts';

export function createDraftLoaders(prisma: PrismaClient, viewerId: () => string | undefined) {
  return {
    draft: new DataLoader<string, ChatDraft | null>(async (chatIds) => {
      const userId = viewerId();
      const rows = userId ? await prisma.chatDraft.findMany({ where: { userId, chatId: { in: [...chatIds] } } }) : [];
      const byChat = new Map(rows.map((row) => [row.chatId, row]));
      return chatIds.map((id) => byChat.get(id) ?? null);
    }),
  };
}
