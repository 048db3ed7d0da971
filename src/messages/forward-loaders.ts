// Where each forwarded message of a page came from: one query for the page.
import DataLoader from 'dataloader';
import type { MessageForward, PrismaClient, User } from '../generated/prisma/client.ts';

export type ForwardOrigin = MessageForward & { sender: User };

export function createForwardLoaders(prisma: PrismaClient) {
  return {
    forwardedFrom: new DataLoader<string, ForwardOrigin | null>(async (messageIds) => {
      const rows = await prisma.messageForward.findMany({ where: { messageId: { in: [...messageIds] } }, include: { sender: true } });
      const byMessage = new Map(rows.map((row) => [row.messageId, row]));
      return messageIds.map((id) => byMessage.get(id) ?? null);
    }),
  };
}
