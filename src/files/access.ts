// Who may download an attachment: its uploader, members of a chat where a message carries it, and
// anyone signed in while it is a profile picture (as public as the profile it belongs to). An upload
// not sent yet is its uploader's alone; deleting the message takes it away from the chat.
import type { Attachment, Prisma, PrismaClient } from '../generated/prisma/client.ts';

/** The same rule as a query filter, for loading many at once (node lookups). */
export const downloadableBy = (viewerId: string) =>
  ({
    OR: [{ uploaderId: viewerId }, { avatarOf: { isNot: null } }, { messages: { some: { chat: { members: { some: { userId: viewerId } } } } } }],
  }) satisfies Prisma.AttachmentWhereInput;

/** The attachment when `viewerId` may download it; null otherwise, exactly as if it did not exist. */
export async function findDownloadableAttachment(prisma: PrismaClient, attachmentId: string, viewerId: string): Promise<Attachment | null> {
  const found = await prisma.attachment.findUnique({ where: { id: attachmentId }, include: { avatarOf: { select: { id: true } } } });
  if (!found) return null;
  const { avatarOf, ...attachment } = found;
  if (attachment.uploaderId === viewerId || avatarOf) return attachment;
  const sentToViewer = await prisma.message.findFirst({
    where: { attachmentId, chat: { members: { some: { userId: viewerId } } } },
    select: { id: true },
  });
  return sentToViewer ? attachment : null;
}
