// Forwarding: a copy of a message the viewer can read, sent by the viewer into a chat they can
// write to. The copy keeps kind, text, location and attachment (which its chat's members may then
// download, src/files/access.ts) and where it came from as `forwardedFrom { sender sentAt }`: the
// original's sender and send time, never its chat.
import { badUserInput } from '../errors.ts';
import type { Message } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import type { Services } from '../services.ts';
import { decodeContent, messageAad, sealContent, type MessageContent } from './content.ts';
import { announceSent, changedWhileSending, outboxInsert, requireVisibleMessage, senderMayWrite, SENT_ROW, writeRefusal, type SentRow } from './messages.ts';

type ForwardServices = Pick<Services, 'prisma' | 'cipher' | 'events' | 'notifications' | 'config'>;

export async function forwardMessage(services: ForwardServices, viewerId: string, messageId: string, toChatId: string): Promise<Message> {
  const { prisma, cipher } = services;
  const { message: source, membership } = await requireVisibleMessage(services, viewerId, messageId);
  if (membership.chat.encrypted) {
    throw badUserInput('messageId', 'This chat is end-to-end encrypted: forward by sending the text again with sendEncryptedMessage.');
  }
  if (source.deletedAt || !source.content) throw badUserInput('messageId', 'Deleted messages cannot be forwarded.');
  if (source.kind === 'CALL') throw badUserInput('messageId', 'Call messages cannot be forwarded.');

  const [opened] = await cipher.open([{ keyId: source.contentKeyId!, aad: messageAad(source.id), ciphertext: source.content }]);
  const content: MessageContent = decodeContent(opened!);
  // A forward of a forward names the first sender, as the copy it was made from did.
  const origin = (await prisma.messageForward.findUnique({ where: { messageId: source.id } })) ?? { senderId: source.senderId, sentAt: source.createdAt };

  const id = uuidv7();
  const sealed = await sealContent(cipher, messageAad(id), content);
  // As a send (src/messages/messages.ts): the next position and the row in one statement, the push
  // outbox with it; the attachment is the source's, not an upload of the viewer's.
  const [copy] = await prisma.$queryRaw<SentRow[]>`
    WITH next AS (
      UPDATE "Chat" c SET "lastSeq" = c."lastSeq" + 1, "lastMessageId" = ${id}, "lastActivityAt" = now()
      WHERE c."id" = ${toChatId} AND NOT c."encrypted" AND ${senderMayWrite(viewerId, null)}
      RETURNING c."lastSeq", c."membersVersion"
    )
    , inserted AS (
      INSERT INTO "Message" ("id", "chatId", "seq", "senderId", "kind", "content", "contentKeyId", "attachmentId", "createdAt")
      SELECT ${id}, ${toChatId}, next."lastSeq", ${viewerId}, ${source.kind}::"MessageKind", ${sealed.content},
             ${sealed.contentKeyId}, ${source.attachmentId}, now()
      FROM next
      RETURNING *
    )
    , origin AS (
      INSERT INTO "MessageForward" ("messageId", "senderId", "sentAt") SELECT "id", ${origin.senderId}, ${origin.sentAt} FROM inserted
    )
    ${outboxInsert(services.config)}
    ${SENT_ROW}`;
  if (!copy) throw await whyForwardWasRefused(prisma, viewerId, toChatId);
  return announceSent(services, copy);
}

async function whyForwardWasRefused(prisma: ForwardServices['prisma'], viewerId: string, toChatId: string) {
  const { problem, membership } = await writeRefusal(prisma, viewerId, toChatId, null);
  if (problem) return problem;
  if (membership.chat.encrypted) return badUserInput('toChatId', 'The target chat is end-to-end encrypted: send there with sendEncryptedMessage.');
  return changedWhileSending();
}

