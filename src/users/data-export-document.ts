// The JSON document exportMyData stores: everything the account holds about its user (the GDPR
// right of access). Profile, contacts, blocks, chats, device sessions, push subscriptions, uploads
// (their metadata; the bytes stay downloadable through the API), drafts (decrypted), reactions,
// scheduled messages (decrypted, in every state), and
// every message the user sent, decrypted, with its earlier versions. Other people's messages and group member lists are theirs,
// not the user's, and stay out.
import { draftText } from '../chats/drafts.ts';
import { decodeContent, editAad, messageAad, scheduledAad } from '../messages/content.ts';
import type { Services } from '../services.ts';
import { deletedUsername } from './deleted-accounts.ts';

type DocumentServices = Pick<Services, 'prisma' | 'cipher'>;

/** Identifies the document's shape, so tools reading exports know what they hold. */
export const EXPORT_FORMAT = { format: 'kocmoc-data-export', version: 1 } as const;
/** Messages read and decrypted at a time. */
const MESSAGE_BATCH = 500;

const publicUser = (user: { id: string; username: string; displayName: string; deletedAt: Date | null }) => ({
  id: user.id,
  username: user.deletedAt ? deletedUsername(user.id) : user.username,
  displayName: user.displayName,
  deleted: user.deletedAt !== null,
});
const PUBLIC_USER = { id: true, username: true, displayName: true, deletedAt: true } as const;
const PROFILE = {
  id: true,
  username: true,
  email: true,
  displayName: true,
  bio: true,
  avatarAttachmentId: true,
  status: true,
  lastSeenAt: true,
  createdAt: true,
  updatedAt: true,
} as const;
const SESSION = { id: true, userAgent: true, createdAt: true, lastRefreshAt: true, expiresAt: true, revokedAt: true, revokedReason: true } as const;
const UPLOAD = { id: true, kind: true, name: true, mimeType: true, size: true, width: true, height: true, durationMs: true, createdAt: true } as const;

/**
 * The document as UTF-8 pieces (messages a batch at a time, so no single string holds them all),
 * for writeEncryptedFile, which needs the total size before sealing.
 */
export async function exportDocument(services: DocumentServices, userId: string, exportedAt: Date): Promise<Buffer[]> {
  const { prisma } = services;
  const [profile, contacts, blocks, memberships, sessions, pushSubscriptions, uploads, drafts, reactions, scheduled] = await Promise.all([
    prisma.user.findUniqueOrThrow({ where: { id: userId }, select: PROFILE }),
    prisma.contact.findMany({ where: { ownerId: userId }, include: { user: { select: PUBLIC_USER } }, orderBy: { createdAt: 'asc' } }),
    prisma.userBlock.findMany({ where: { blockerId: userId }, include: { blocked: { select: PUBLIC_USER } }, orderBy: { createdAt: 'asc' } }),
    prisma.chatMember.findMany({
      where: { userId },
      include: { chat: { include: { members: { where: { userId: { not: userId } }, take: 1, include: { user: { select: PUBLIC_USER } } } } } },
      orderBy: { joinedAt: 'asc' },
    }),
    prisma.session.findMany({ where: { userId }, select: SESSION, orderBy: { createdAt: 'asc' } }),
    prisma.pushSubscription.findMany({ where: { userId }, select: { endpoint: true, createdAt: true }, orderBy: { createdAt: 'asc' } }),
    prisma.attachment.findMany({ where: { uploaderId: userId }, select: UPLOAD, orderBy: { createdAt: 'asc' } }),
    prisma.chatDraft.findMany({ where: { userId }, orderBy: { updatedAt: 'asc' } }),
    prisma.messageReaction.findMany({ where: { userId }, select: { messageId: true, emoji: true, createdAt: true }, orderBy: { createdAt: 'asc' } }),
    prisma.scheduledMessage.findMany({ where: { senderId: userId }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] }),
  ]);
  // One decryption batch for them all, in the order listed.
  const scheduledContent = (await services.cipher.open(scheduled.map((row) => ({ aad: scheduledAad(row.id), keyId: row.contentKeyId, ciphertext: row.content })))).map(decodeContent);
  const open = async (item: { aad: string; keyId: string; ciphertext: Uint8Array }) => (await services.cipher.open([item]))[0]!;
  const head = {
    ...EXPORT_FORMAT,
    exportedAt,
    profile,
    contacts: contacts.map((contact) => ({ ...publicUser(contact.user), addedAt: contact.createdAt })),
    blockedUsers: blocks.map((block) => ({ ...publicUser(block.blocked), blockedAt: block.createdAt })),
    chats: memberships.map(({ chat, role, joinedAt, lastReadSeq, mutedUntil }) => ({
      id: chat.id,
      kind: chat.kind,
      title: chat.title,
      isPublic: chat.isPublic,
      createdAt: chat.createdAt,
      role,
      joinedAt,
      lastReadSeq,
      mutedUntil,
      // A direct chat is with someone; who is in a group is the group's business.
      ...(chat.kind === 'DIRECT' ? { with: chat.members[0] ? publicUser(chat.members[0].user) : null } : {}),
    })),
    sessions,
    pushSubscriptions,
    uploads,
    drafts: await Promise.all(
      drafts.map(async (draft) => ({ chatId: draft.chatId, text: await draftText(draft, open), replyToId: draft.replyToId, updatedAt: draft.updatedAt })),
    ),
    reactions,
    scheduledMessages: scheduled.map((row, i) => ({
      id: row.id,
      chatId: row.chatId,
      sendAt: row.sendAt,
      kind: row.kind,
      text: scheduledContent[i]!.text,
      location: scheduledContent[i]!.location,
      attachmentId: row.attachmentId,
      replyToId: row.replyToId,
      threadRootId: row.threadRootId,
      state: row.state,
      failureReason: row.failureReason,
      messageId: row.messageId,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    })),
  };
  // The head's closing brace makes way for the messages, written batch by batch.
  const pieces = [Buffer.from(`${JSON.stringify(head, null, 2).slice(0, -2)},\n  "messages": [`)];
  let written = 0;
  for await (const batch of ownMessages(services, userId)) {
    pieces.push(Buffer.from((written > 0 ? ',' : '') + batch.map((message) => `\n    ${JSON.stringify(message)}`).join(',')));
    written += batch.length;
  }
  pieces.push(Buffer.from(written > 0 ? '\n  ]\n}\n' : ']\n}\n'));
  return pieces;
}

/** The user's messages in the order they were sent, decrypted, with their earlier versions; a batch at a time. */
async function* ownMessages({ prisma, cipher }: DocumentServices, userId: string) {
  for (let after = ''; ; ) {
    const messages = await prisma.message.findMany({
      where: { senderId: userId, id: { gt: after } },
      include: { edits: { orderBy: { editedAt: 'asc' } }, attachment: { select: { id: true, name: true, mimeType: true, size: true } } },
      orderBy: { id: 'asc' },
      take: MESSAGE_BATCH,
    });
    if (messages.length === 0) return;
    after = messages.at(-1)!.id;
    const sealed = messages.flatMap((message) => [
      ...(message.content && message.contentKeyId ? [{ aad: messageAad(message.id), keyId: message.contentKeyId, ciphertext: message.content }] : []),
      ...message.edits.map((edit) => ({ aad: editAad(edit.id), keyId: edit.contentKeyId, ciphertext: edit.content })),
    ]);
    // One decryption batch per page of messages, in the order they were listed above.
    const opened = (await cipher.open(sealed)).map(decodeContent);
    let next = 0;
    yield messages.map((message) => {
      const content = message.content && message.contentKeyId ? opened[next++]! : null;
      const edits = message.edits.map((edit) => ({ text: opened[next++]!.text, replacedAt: edit.editedAt }));
      return {
        id: message.id,
        chatId: message.chatId,
        seq: message.seq,
        kind: message.kind,
        text: content?.text ?? null,
        location: content?.location ?? null,
        attachment: message.attachment,
        replyToId: message.replyToId,
        clientMessageId: message.clientMessageId,
        createdAt: message.createdAt,
        editedAt: message.editedAt,
        deletedAt: message.deletedAt,
        edits,
      };
    });
    if (messages.length < MESSAGE_BATCH) return;
  }
}
