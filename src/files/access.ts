// Who may download an attachment: its uploader, and members of a chat where a message carries it.
// An upload not sent yet is its uploader's alone; deleting the message takes it away from the chat.
import type { Attachment, PrismaClient } from '../generated/prisma/client.ts';

/** The attachment when `viewerId` may download it; null otherwise, exactly as if it did not exist. */
export async function findDownloadableAttachment(prisma: PrismaClient, attachmentId: string, viewerId: string): Promise<Attachment | null> {
  const attachment = await prisma.attachment.findUnique({ where: { id: attachmentId } });
  if (!attachment) return null;
  if (attachment.uploaderId === viewerId) return attachment;
  const sentToViewer = await prisma.message.findFirst({
    where: { attachmentId, chat: { members: { some: { userId: viewerId } } } },
    select: { id: true },
  });
  return sentToViewer ? attachment : null;
}
