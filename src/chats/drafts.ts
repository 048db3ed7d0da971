// Drafts: what a member typed but has not sent, per chat and user (not per device), sealed like
// message text. Every save and clear is told to all the user's connections; sending clears it.
import { badUserInput } from '../errors.ts';
import { decodeContent, sealContent } from '../messages/content.ts';
import { Prisma, type ChatDraft } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { requireMembership } from './membership.ts';

type DraftServices = Pick<Services, 'prisma' | 'cipher' | 'events'>;

/** Longest draft, in code points: a message's longest text (TEXT_MAX_LENGTH in src/messages/messages.ts). */
export const DRAFT_MAX_LENGTH = 4_000;

/** AAD of a draft: its ciphertext cannot be moved to another chat or user. */
export const draftAad = (chatId: string, userId: string) => `draft:${chatId}:${userId}`;

/**
 * Saves the viewer's draft in a chat, replacing the one before. An empty (or blank) text without a
 * replyToId clears it. Not in an end-to-end encrypted chat: the server would hold the text in the clear.
 */
export async function saveDraft(
  services: DraftServices,
  viewerId: string,
  chatId: string,
  text: string | null | undefined,
  replyToId: string | null | undefined,
): Promise<void> {
  const { prisma, cipher, events } = services;
  const membership = await requireMembership(prisma, chatId, viewerId);
  if (membership.chat.encrypted) throw badUserInput('chatId', 'This chat is end-to-end encrypted: keep its drafts on the device.');
  const value = text ?? '';
  if ([...value].length > DRAFT_MAX_LENGTH) throw badUserInput('text', `A draft is at most ${DRAFT_MAX_LENGTH} characters.`);
  if (replyToId && !(await prisma.message.findFirst({ where: { id: replyToId, chatId }, select: { id: true } }))) {
    throw badUserInput('replyToId', 'The message you reply to is not in this chat.');
  }
  if (value.trim() === '' && !replyToId) return clearDraft(services, viewerId, chatId);

  const sealed = await sealContent(cipher, draftAad(chatId, viewerId), { text: value, location: null });
  const data = { ...sealed, replyToId: replyToId ?? null, updatedAt: new Date() };
  await prisma.chatDraft.upsert({ where: { chatId_userId: { chatId, userId: viewerId } }, create: { chatId, userId: viewerId, ...data }, update: data });
  await events.draft(viewerId, { chatId });
}

/** Removes the user's draft in the chat (they sent the message, or emptied it); tells their devices if there was one. */
export async function clearDraft({ prisma, events }: Pick<DraftServices, 'prisma' | 'events'>, userId: string, chatId: string): Promise<void> {
  const { count } = await prisma.chatDraft.deleteMany({ where: { chatId, userId } });
  if (count > 0) await events.draft(userId, { chatId });
}

/**
 * The part of a send's statement that clears the sender's draft in the chat when the message was
 * inserted (`inserted`), so a send stays one round trip; its `cleared_draft` says whether there was one.
 */
export const clearDraftCte = (chatId: string, userId: string) => Prisma.sql`
  , cleared_draft AS (
    DELETE FROM "ChatDraft" WHERE "chatId" = ${chatId} AND "userId" = ${userId} AND EXISTS (SELECT 1 FROM inserted)
    RETURNING 1
  )`;

/** The draft's text, opened (for the schema, through the request's decryption batch). */
export const draftText = async (draft: Pick<ChatDraft, 'chatId' | 'userId' | 'content' | 'contentKeyId'>, open: (item: { aad: string; keyId: string; ciphertext: Uint8Array }) => Promise<Uint8Array>) =>
  decodeContent(await open({ aad: draftAad(draft.chatId, draft.userId), keyId: draft.contentKeyId, ciphertext: draft.content })).text ?? '';
