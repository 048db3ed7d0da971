// Sending, editing, deleting and reading messages.
import { z } from 'zod';
import { directPartner, findMembership, requireMembership } from '../chats/membership.ts';
import type { Services } from '../services.ts';
import { badUserInput, conflict, forbidden, notFound } from '../errors.ts';
import { isForeignKeyViolation, isUniqueViolation } from '../db/errors.ts';
import { Prisma, type Message, type MessageKind } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import { isBlockedEitherWay } from '../users/blocking.ts';
import { isDeletedAccount } from '../users/deleted-accounts.ts';
import { parseInput } from '../validation.ts';
import { decodeContent, editAad, messageAad, sealContent, type Location, type MessageContent } from './content.ts';
import { deleteReadEnvelopes } from './envelopes.ts';
import { mentionsCte, queueMentionPushes, replaceMentions } from './mentions.ts';
import { announceRead } from '../chats/read-state.ts';
import { clearDraftCte } from '../chats/drafts.ts';
import { reindexMessage, searchIndexInsert, tokensToIndex } from './search-index.ts';
import { threadRootCondition, threadRootProblem } from './threads.ts';

type MessageServices = Pick<Services, 'prisma' | 'cipher' | 'events' | 'notifications' | 'config'>;

/** Queues the message's push notifications with it (src/notifications/outbox.ts): a CTE after `inserted`. */
const OUTBOX_INSERT = Prisma.sql`, outbox AS (INSERT INTO "NotificationOutbox" ("messageId") SELECT "id" FROM inserted)`;
export const outboxInsert = (config: MessageServices['config']) => (config.push.enabled ? OUTBOX_INSERT : Prisma.empty);

/** The message an earlier send with this clientMessageId made, when `error` is that send's unique index refusing this one. */
export async function earlierSend(services: Pick<MessageServices, 'prisma' | 'events'>, error: unknown, senderId: string, clientMessageId: string | null, chatId: string) {
  if (!clientMessageId || !isUniqueViolation(error)) return null;
  const earlier = await findByClientId(services, senderId, clientMessageId, chatId);
  // The first attempt's instance may have died between its commit and its publish: publish again,
  // or a last message of its chat would reach no live subscriber. Feeds drop repeats.
  if (earlier) await services.events.message(chatId, 'CREATED', earlier);
  return earlier;
}

/**
 * What a send's statement returns: the message, and the chat's `membersVersion` the send saw under
 * the chat's row lock. The CREATED event carries it, so each instance knows whether its cached member
 * list of the chat is current for this message (src/realtime/chat-members.ts).
 */
export type SentRow = Message & { membersVersion: number };
/** The last part of a send's statement, after its `next` (the chat row) and `inserted` parts. */
export const SENT_ROW = Prisma.sql`SELECT inserted.*, (SELECT "membersVersion" FROM next) AS "membersVersion" FROM inserted`;
/** SENT_ROW of a send that also cleared the sender's draft (clearDraftCte): whether there was one. */
const SENT_ROW_CLEARING_DRAFT = Prisma.sql`SELECT inserted.*, (SELECT "membersVersion" FROM next) AS "membersVersion",
  EXISTS (SELECT 1 FROM cleared_draft) AS "draftCleared" FROM inserted`;

/** After a send committed: subscribers hear of it, and its push notifications are relayed soon. Returns the message. */
export async function announceSent(services: Pick<MessageServices, 'events' | 'notifications' | 'config'>, sent: SentRow): Promise<Message> {
  const { membersVersion, ...message } = sent;
  await services.events.message(message.chatId, 'CREATED', message, { membersVersion });
  if (services.config.push.enabled) services.notifications.messageSent();
  return message;
}

/** Longest text or caption, in Unicode code points. */
export const TEXT_MAX_LENGTH = 4_000;
export const CLIENT_MESSAGE_ID_MAX_LENGTH = 64;
const MESSAGE = 'Message';

const textSchema = z
  .string()
  .refine((text) => [...text].length <= TEXT_MAX_LENGTH, `Text must be at most ${TEXT_MAX_LENGTH} characters.`);

const locationSchema = z.object({
  latitude: z.number().finite().min(-90, 'Latitude must be between -90 and 90.').max(90, 'Latitude must be between -90 and 90.'),
  longitude: z
    .number()
    .finite()
    .min(-180, 'Longitude must be between -180 and 180.')
    .max(180, 'Longitude must be between -180 and 180.'),
});

export const clientMessageIdSchema = z
  .string()
  .min(1, 'clientMessageId cannot be empty.')
  .max(CLIENT_MESSAGE_ID_MAX_LENGTH, `clientMessageId must be at most ${CLIENT_MESSAGE_ID_MAX_LENGTH} characters.`);

export interface SendMessageInput {
  chatId: string | number;
  kind: MessageKind;
  text?: string | null;
  attachmentId?: string | number | null;
  location?: Location | null;
  replyToId?: string | number | null;
  /** Posts into the thread under this message (src/messages/threads.ts). */
  threadRootId?: string | number | null;
  clientMessageId?: string | null;
}

const MEDIA_KINDS: ReadonlySet<MessageKind> = new Set(['IMAGE', 'FILE', 'VOICE']);

/** Checks the input against its kind; returns what gets sealed and stored. */
export function validateSend(input: SendMessageInput): MessageContent & { attachmentId: string | null } {
  const { kind } = input;
  if (kind === 'CALL') throw badUserInput('input.kind', 'CALL messages are added by calls (startCall).');
  const text = input.text == null ? null : parseInput(textSchema, input.text, 'input.text');
  if (kind !== 'LOCATION' && input.location != null) throw badUserInput('input.location', `${kind} messages have no location.`);
  if (!MEDIA_KINDS.has(kind) && input.attachmentId != null) {
    throw badUserInput('input.attachmentId', `${kind} messages have no attachment.`);
  }
  if (kind === 'TEXT') {
    if (!text || text.trim() === '') throw badUserInput('input.text', 'A text message needs some text.');
    return { text, location: null, attachmentId: null };
  }
  if (kind === 'LOCATION') {
    if (text != null) throw badUserInput('input.text', 'Location messages have no text.');
    if (!input.location) throw badUserInput('input.location', 'A location message needs a location.');
    return { text: null, location: parseInput(locationSchema, input.location, 'input.location'), attachmentId: null };
  }
  if (input.attachmentId == null) throw badUserInput('input.attachmentId', `${kind} messages need an attachmentId (upload the file first).`);
  // A media message's text is its caption; an empty caption is no caption.
  return { text: text?.trim() ? text : null, location: null, attachmentId: String(input.attachmentId) };
}

/**
 * Sends a message. With a clientMessageId, retries (even concurrent ones) return the first message
 * and create nothing: the (sender, clientMessageId) unique index decides, not a prior lookup.
 *
 * The happy path is one statement: every rule that needs the database (membership, blocks in a
 * direct chat, the replied-to message, the attachment) is a condition of the insert, and only a
 * refused insert pays for the lookups that tell the client why.
 */
export async function sendMessage(services: MessageServices, senderId: string, input: SendMessageInput): Promise<Message> {
  const { prisma, cipher } = services;
  const chatId = String(input.chatId);
  const content = validateSend(input);
  const clientMessageId =
    input.clientMessageId == null ? null : parseInput(clientMessageIdSchema, input.clientMessageId, 'input.clientMessageId');
  const replyToId = input.replyToId == null ? null : String(input.replyToId);
  const threadRootId = input.threadRootId == null ? null : String(input.threadRootId);
  const attachmentKind = input.kind === 'IMAGE' || input.kind === 'VOICE' ? input.kind : null;

  const id = uuidv7();
  const sealed = await sealContent(cipher, messageAad(id), content);
  const searchTokens = tokensToIndex(services.config, chatId, content.text);
  let inserted: Array<SentRow & { draftCleared: boolean }>;
  try {
    // Taking the next position under the chat row's lock and inserting in one statement means a
    // reader never sees position n+1 before n: paging forward during concurrent sends has no gaps.
    // The outbox row for push notifications commits with the message (src/notifications/outbox.ts).
    inserted = await prisma.$queryRaw<Array<SentRow & { draftCleared: boolean }>>`
      WITH next AS (
        UPDATE "Chat" c SET "lastSeq" = c."lastSeq" + 1, "lastMessageId" = ${id}, "lastActivityAt" = now()
        WHERE c."id" = ${chatId} AND NOT c."encrypted" AND ${senderMayWrite(senderId, replyToId)} ${threadRootCondition(threadRootId)}
          AND (${content.attachmentId}::text IS NULL OR EXISTS (
            SELECT 1 FROM "Attachment" a WHERE a."id" = ${content.attachmentId} AND a."uploaderId" = ${senderId}
              AND (${attachmentKind}::text IS NULL OR a."kind"::text = ${attachmentKind})))
        RETURNING c."lastSeq", c."membersVersion"
      )
      , inserted AS (
        INSERT INTO "Message" ("id", "chatId", "seq", "senderId", "kind", "content", "contentKeyId",
                               "attachmentId", "replyToId", "threadRootId", "clientMessageId", "createdAt")
        SELECT ${id}, ${chatId}, next."lastSeq", ${senderId}, ${input.kind}::"MessageKind", ${sealed.content},
               ${sealed.contentKeyId}, ${content.attachmentId}, ${replyToId}, ${threadRootId}, ${clientMessageId}, now()
        FROM next
        RETURNING *
      )
      ${mentionsCte({ messageId: id, chatId, senderId }, content.text)}
      ${clearDraftCte(chatId, senderId)}
      ${outboxInsert(services.config)}
      ${searchIndexInsert(searchTokens)}
      ${SENT_ROW_CLEARING_DRAFT}`;
  } catch (error) {
    const earlier = await earlierSend(services, error, senderId, clientMessageId, chatId);
    if (earlier) return earlier;
    // The attachment was cleaned up (unused for a day) while we were sending.
    if (content.attachmentId && isForeignKeyViolation(error)) throw badUserInput('input.attachmentId', 'Unknown attachment.');
    throw error;
  }
  const message = inserted[0];
  if (!message) throw await whySendWasRefused(services, senderId, chatId, input, replyToId, content.attachmentId);
  const { draftCleared, ...sent } = message;
  if (draftCleared) await services.events.draft(senderId, { chatId });
  return announceSent(services, sent);
}

/**
 * Conditions on the chat row `c` of a send (plaintext or encrypted): the sender is a member, no
 * block stands between the two of a direct chat, the other one of a direct chat has not deleted
 * their account, and the replied-to message is in the chat.
 */
export const senderMayWrite = (senderId: string, replyToId: string | null) => Prisma.sql`
          EXISTS (SELECT 1 FROM "ChatMember" m WHERE m."chatId" = c."id" AND m."userId" = ${senderId})
          AND NOT (c."kind" = 'DIRECT' AND EXISTS (
            SELECT 1 FROM "ChatMember" other JOIN "UserBlock" b
              ON (b."blockerId" = ${senderId} AND b."blockedId" = other."userId")
              OR (b."blockerId" = other."userId" AND b."blockedId" = ${senderId})
            WHERE other."chatId" = c."id" AND other."userId" <> ${senderId}))
          AND NOT (c."kind" = 'DIRECT' AND EXISTS (
            SELECT 1 FROM "ChatMember" other JOIN "User" u ON u."id" = other."userId"
            WHERE other."chatId" = c."id" AND other."userId" <> ${senderId} AND u."deletedAt" IS NOT NULL))
          AND (${replyToId}::text IS NULL OR EXISTS (
            SELECT 1 FROM "Message" r WHERE r."id" = ${replyToId} AND r."chatId" = c."id"))`;

/**
 * Why senderMayWrite refused (NOT_FOUND, FORBIDDEN, BAD_USER_INPUT on replyToId), in the order a
 * client would fix them; the membership when none of it applies.
 */
export async function writeRefusal(prisma: MessageServices['prisma'], senderId: string, chatId: string, replyToId: string | null) {
  const membership = await findMembership(prisma, chatId, senderId);
  if (!membership) return { problem: notFound('Chat') };
  if (membership.chat.kind === 'DIRECT') {
    const partner = directPartner(membership.chat.directKey!, senderId);
    if (partner && (await isBlockedEitherWay(prisma, senderId, partner))) return { problem: forbidden('You cannot message this user.') };
    if (partner && (await isDeletedAccount(prisma, partner))) return { problem: forbidden('This account was deleted.') };
  }
  if (replyToId && !(await prisma.message.findFirst({ where: { id: replyToId, chatId }, select: { id: true } }))) {
    return { problem: badUserInput('input.replyToId', 'The message you reply to is not in this chat.') };
  }
  return { problem: null, membership };
}

/** Nothing is wrong any more: something changed between the insert and now (e.g. a block lifted). */
export const changedWhileSending = () => conflict('input.chatId', 'The chat changed while sending; try again.');

/** The error for a refused send, checked in the order a client would fix them. */
async function whySendWasRefused(
  services: MessageServices,
  senderId: string,
  chatId: string,
  input: SendMessageInput,
  replyToId: string | null,
  attachmentId: string | null,
) {
  const { kind } = input;
  const { problem, membership } = await writeRefusal(services.prisma, senderId, chatId, replyToId);
  if (problem) return problem;
  const threadProblem = await threadRootProblem(services.prisma, chatId, input.threadRootId == null ? null : String(input.threadRootId));
  if (threadProblem) return threadProblem;
  if (membership.chat.encrypted) {
    const field = input.text != null ? 'input.text' : input.location != null ? 'input.location' : 'input.chatId';
    return badUserInput(field, 'This chat is end-to-end encrypted: the server takes no plaintext in it. Send with sendEncryptedMessage.');
  }
  if (attachmentId) {
    const problem = await attachmentProblem(services, senderId, attachmentId, kind);
    if (problem) return problem;
  }
  return changedWhileSending();
}

export async function findByClientId({ prisma }: Pick<MessageServices, 'prisma'>, senderId: string, clientMessageId: string, chatId: string) {
  const earlier = await prisma.message.findUnique({ where: { senderId_clientMessageId: { senderId, clientMessageId } } });
  if (earlier && earlier.chatId !== chatId) {
    throw conflict('input.clientMessageId', 'This clientMessageId was already used for a message in another chat.');
  }
  return earlier;
}

/** Why `attachmentId` cannot be sent by `senderId` as `kind`; null if it can. */
export async function attachmentProblem({ prisma }: Pick<MessageServices, 'prisma'>, senderId: string, attachmentId: string, kind: MessageKind) {
  const attachment = await prisma.attachment.findUnique({ where: { id: attachmentId } });
  // Someone else's upload is as unknown as a missing one.
  if (!attachment || attachment.uploaderId !== senderId) return badUserInput('input.attachmentId', 'Unknown attachment.');
  if (kind === 'IMAGE' && attachment.kind !== 'IMAGE') return badUserInput('input.attachmentId', 'This attachment is not an image.');
  if (kind === 'VOICE' && attachment.kind !== 'VOICE') return badUserInput('input.attachmentId', 'This attachment is not a voice recording.');
  return null;
}

/** The message if the viewer is a member of its chat; NOT_FOUND otherwise (existence stays private). */
export async function requireVisibleMessage({ prisma }: Pick<MessageServices, 'prisma'>, viewerId: string, messageId: string) {
  const message = await prisma.message.findUnique({ where: { id: messageId } });
  const membership = message && (await findMembership(prisma, message.chatId, viewerId));
  if (!message || !membership) throw notFound(MESSAGE);
  return { message, membership };
}

/** Replaces the text (or caption) of one's own message, keeping the earlier text in `edits`. */
export async function editMessage(services: MessageServices, viewerId: string, messageId: string, newText: string): Promise<Message> {
  const { prisma, cipher } = services;
  const text = parseInput(textSchema, newText, 'text');
  for (let attempt = 0; ; attempt++) {
    const { message, membership } = await requireVisibleMessage(services, viewerId, messageId);
    if (message.senderId !== viewerId) throw forbidden('Only the sender can edit a message.');
    if (membership.chat.encrypted) throw badUserInput('id', 'This chat is end-to-end encrypted: edit with editEncryptedMessage.');
    if (message.kind === 'CALL') throw badUserInput('id', 'Call messages cannot be edited.');
    if (message.deletedAt || !message.content) throw badUserInput('id', 'Deleted messages cannot be edited.');
    if (message.kind === 'LOCATION') throw badUserInput('id', 'Location messages cannot be edited.');
    if (message.kind === 'TEXT' && text.trim() === '') throw badUserInput('text', 'A text message needs some text.');

    const [opened] = await cipher.open([{ keyId: message.contentKeyId!, aad: messageAad(message.id), ciphertext: message.content }]);
    const current = decodeContent(opened!);
    const next = message.kind === 'TEXT' || text.trim() ? text : null;
    if (current.text === next) return message;

    const editId = uuidv7();
    const [previous, replacement] = await Promise.all([
      sealContent(cipher, editAad(editId), { text: current.text, location: null }),
      sealContent(cipher, messageAad(message.id), { text: next, location: current.location }),
    ]);
    const now = new Date();
    // Optimistic: the update only lands if nobody edited or deleted since we read, so every
    // earlier version ends up in the history exactly once.
    const applied = await prisma.$transaction(async (tx) => {
      const updated = await tx.message.updateMany({
        where: { id: message.id, deletedAt: null, editedAt: message.editedAt },
        data: { ...replacement, editedAt: now },
      });
      if (updated.count === 0) return null;
      await tx.messageEdit.create({ data: { id: editId, messageId: message.id, ...previous, editedAt: now } });
      const newlyMentioned = await replaceMentions(tx, { messageId: message.id, chatId: message.chatId, senderId: viewerId }, next);
      await reindexMessage(tx, message.id, message.chatId, tokensToIndex(services.config, message.chatId, next));
      return { pushes: services.config.push.enabled && (await queueMentionPushes(tx, editId, message.id, newlyMentioned)) };
    });
    if (applied) {
      await services.events.message(message.chatId, 'EDITED', message);
      if (applied.pushes) services.notifications.messageSent();
      return prisma.message.findUniqueOrThrow({ where: { id: message.id } });
    }
    if (attempt >= 3) throw conflict('id', 'The message is being edited elsewhere; try again.');
  }
}

/**
 * Soft delete by the sender or a chat OWNER/ADMIN: the content and its history are erased, the row
 * stays so positions and cursors stay stable. Deleting twice is harmless.
 */
export async function deleteMessage(services: MessageServices, viewerId: string, messageId: string): Promise<Message> {
  const { prisma } = services;
  const { message, membership } = await requireVisibleMessage(services, viewerId, messageId);
  const moderator = membership.chat.kind === 'GROUP' && (membership.role === 'OWNER' || membership.role === 'ADMIN');
  if (message.senderId !== viewerId && !moderator) throw forbidden('Only the sender or a chat admin can delete a message.');
  if (message.deletedAt) return message;
  const [deleted] = await eraseMessages(services, [message.id]);
  // Deleted meanwhile by someone else, who told the chat.
  return deleted ?? prisma.message.findUniqueOrThrow({ where: { id: message.id } });
}

/**
 * Erases messages as deleting them does, in one transaction: each row stays (positions and cursors
 * stay stable) with `deletedAt` set and its content, attachment and edit history gone. Messages
 * already deleted are left as they are. Tells each chat; returns the messages it erased.
 */
export async function eraseMessages({ prisma, events }: Pick<MessageServices, 'prisma' | 'events'>, messageIds: string[]): Promise<Message[]> {
  const [erased] = await prisma.$transaction([
    prisma.message.updateManyAndReturn({
      where: { id: { in: messageIds }, deletedAt: null },
      data: { content: null, contentKeyId: null, attachmentId: null, deletedAt: new Date() },
    }),
    prisma.messageEdit.deleteMany({ where: { messageId: { in: messageIds } } }),
    prisma.messageEnvelope.deleteMany({ where: { messageId: { in: messageIds } } }),
    prisma.messageReaction.deleteMany({ where: { messageId: { in: messageIds } } }),
    prisma.messageMention.deleteMany({ where: { messageId: { in: messageIds } } }),
    prisma.messagePin.deleteMany({ where: { messageId: { in: messageIds } } }),
    prisma.messageSearch.deleteMany({ where: { messageId: { in: messageIds } } }),
  ]);
  for (const message of erased) await events.message(message.chatId, 'DELETED', message);
  return erased;
}

/**
 * Marks everything up to `messageId` as read. Read state never moves backwards. In an encrypted
 * chat, the envelopes of those messages addressed to the reading device (`deviceId`) are deleted:
 * that device has them.
 */
export async function markRead(services: MessageServices, viewerId: string, chatId: string, messageId: string, deviceId?: string): Promise<void> {
  const { prisma } = services;
  const membership = await requireMembership(prisma, chatId, viewerId);
  const message = await prisma.message.findFirst({ where: { id: messageId, chatId }, select: { id: true, seq: true } });
  if (!message) throw notFound(MESSAGE);
  const moved = await prisma.chatMember.updateMany({
    where: { chatId, userId: viewerId, lastReadSeq: { lt: message.seq } },
    data: { lastReadSeq: message.seq, lastReadMessageId: message.id },
  });
  if (moved.count > 0) await announceRead(services, viewerId, chatId, message);
  if (membership.chat.encrypted && deviceId) await deleteReadEnvelopes(prisma, deviceId, chatId, message.seq);
}
