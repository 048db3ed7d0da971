// The two notification jobs, as plain functions of their input and dependencies. The BullMQ worker
// and the in-process runner call the same code.
import { createHash } from 'node:crypto';
import type { ContentCipher } from '../crypto/content-cipher.ts';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { decodeContent, messageAad } from '../messages/content.ts';
import { followsThread, threadFollowersAmong } from '../messages/threads.ts';
import type { PresenceReader } from '../realtime/presence/reader.ts';
import type { PushOptions, PushSender, PushTarget } from './web-push.ts';

export interface FanOutJob {
  messageId: string;
}

export interface DeliveryJob {
  messageId: string;
  subscriptionId: string;
}

/** A job that failed in a way retrying will not fix. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

export interface NotificationDeps {
  prisma: PrismaClient;
  cipher: ContentCipher;
  presence: PresenceReader;
  logger: Logger;
  send: PushSender;
  /** Queues delivery jobs (job id per message and device, delayed by the collapse window). */
  enqueueDeliveries(jobs: DeliveryJob[]): Promise<void>;
  /** A message as every recipient's notification shows it (cached: one message has many recipients). */
  notifiedMessage(messageId: string): Promise<NotifiedMessage | null>;
}

/** Seconds a push service keeps a notification for an unreachable device. */
const PUSH_TTL_SECONDS = 24 * 3600;
const PREVIEW_MAX = 120;

/**
 * Who hears about a new message: every member but the sender who has not muted the chat, has not
 * blocked the sender, and has no live connection anywhere (a connected client gets the event over
 * its socket instead) — one delivery per registered device of a live session.
 */
export async function fanOut(deps: NotificationDeps, { messageId }: FanOutJob): Promise<number> {
  const { prisma } = deps;
  const message = await prisma.message.findUnique({
    where: { id: messageId },
    select: { chatId: true, senderId: true, deletedAt: true, threadRootId: true },
  });
  if (!message || message.deletedAt) return 0;
  const now = new Date();
  const { threadRootId } = message;
  const members = await prisma.chatMember.findMany({
    where: {
      chatId: message.chatId,
      userId: { not: message.senderId },
      // A thread reply reaches the thread's followers, muted chat or not (and no one else).
      ...(threadRootId ? {} : { OR: [{ mutedUntil: null }, { mutedUntil: { lte: now } }] }),
      user: { blocks: { none: { blockedId: message.senderId } } },
    },
    select: { userId: true },
  });
  const candidates = members.map((m) => m.userId);
  const notified = threadRootId ? [...(await threadFollowersAmong(prisma, threadRootId, candidates))] : candidates;
  const online = await deps.presence.onlineUserIds(notified);
  const recipients = notified.filter((id) => !online.has(id));
  if (recipients.length === 0) return 0;
  const subscriptions = await prisma.pushSubscription.findMany({
    where: { userId: { in: recipients }, session: { revokedAt: null, expiresAt: { gt: now } } },
    select: { id: true },
  });
  await deps.enqueueDeliveries(subscriptions.map((s) => ({ messageId, subscriptionId: s.id })));
  return subscriptions.length;
}

export type DeliveryOutcome = 'sent' | 'collapsed' | 'gone' | 'skipped';

/**
 * Sends one notification to one device. A burst collapses: a job whose message has a newer
 * notifiable one in the same chat leaves the telling to that one (which counts them all), and the
 * push service replaces pending notifications of the same chat (Topic). Throws to be retried.
 */
export async function deliver(deps: NotificationDeps, job: DeliveryJob): Promise<DeliveryOutcome> {
  const { prisma } = deps;
  const subscription = await prisma.pushSubscription.findUnique({ where: { id: job.subscriptionId } });
  if (!subscription) return 'gone';
  const message = await deps.notifiedMessage(job.messageId);
  if (!message) return 'skipped';
  // One statement for everything that is the recipient's own and must be fresh.
  const [state] = await prisma.$queryRaw<Array<{ lastReadSeq: number; muted: boolean; deleted: boolean; newer: boolean; unread: number }>>`
    SELECT cm."lastReadSeq",
           -- A thread reply reaches a follower of its thread even in a muted chat.
           coalesce(cm."mutedUntil" > now(), false) AND NOT coalesce((SELECT ${followsThread(Prisma.sql`t."threadRootId"`, Prisma.sql`cm."userId"`)}
             FROM "Message" t WHERE t."id" = ${message.id} AND t."threadRootId" IS NOT NULL), false) AS muted,
           (SELECT m."deletedAt" IS NOT NULL FROM "Message" m WHERE m."id" = ${message.id}) AS deleted,
           -- Only a newer message that notifies this member tells of this one (see fanOut).
           EXISTS (SELECT 1 FROM "Message" n WHERE n."chatId" = cm."chatId" AND n."seq" > ${message.seq}
                     AND n."senderId" <> cm."userId" AND n."deletedAt" IS NULL
                     AND CASE WHEN n."threadRootId" IS NULL THEN NOT coalesce(cm."mutedUntil" > now(), false)
                              ELSE ${followsThread(Prisma.sql`n."threadRootId"`, Prisma.sql`cm."userId"`)} END) AS newer,
           (SELECT count(*)::int FROM "Message" u WHERE u."chatId" = cm."chatId" AND u."seq" > cm."lastReadSeq"
                     AND u."senderId" <> cm."userId" AND u."deletedAt" IS NULL) AS unread
    FROM "ChatMember" cm WHERE cm."chatId" = ${message.chatId} AND cm."userId" = ${subscription.userId}`;
  if (!state || state.muted || state.deleted || state.lastReadSeq >= message.seq) return 'skipped';
  if (state.newer) return 'collapsed';

  const payload = JSON.stringify({ ...message.payload, unread: state.unread });
  return sendToSubscription(deps, subscription, payload, { topic: chatTopic(message.chatId), ttlSeconds: PUSH_TTL_SECONDS, urgency: 'normal' });
}

/**
 * Sends one push to one subscription, which must still pass the endpoint checks; a subscription
 * the push service says is gone (or that fails them) is deleted. Throws to be retried, or for good.
 */
export async function sendToSubscription(
  deps: Pick<NotificationDeps, 'prisma' | 'send'>,
  subscription: PushTarget & { id: string },
  payload: string,
  options: PushOptions,
): Promise<'sent' | 'gone'> {
  const { prisma } = deps;
  // The sender checks the endpoint's addresses as it connects (web-push.ts): a refusal means gone.
  const outcome = await deps.send(subscription, payload, options);
  switch (outcome.kind) {
    case 'sent':
      return 'sent';
    case 'gone':
    // The endpoint's host moved to a private address (or never was one we send to): as good as gone.
    case 'refused':
      await prisma.pushSubscription.deleteMany({ where: { id: subscription.id } });
      return 'gone';
    case 'retry':
      throw new Error(`push delivery will be retried: ${outcome.reason}`);
    case 'rejected':
      throw new PermanentJobError(outcome.reason);
  }
}

/** Collapse key of a chat's notifications (RFC 8030 Topic: up to 32 URL-safe characters). */
export function chatTopic(chatId: string): string {
  return createHash('sha256').update(chatId).digest('base64url').slice(0, 32);
}

/**
 * What every recipient of one message is shown (their own unread count is added per device). In an
 * end-to-end encrypted chat only which message it is: the client fetches and decrypts it.
 */
export interface NotifiedMessage {
  id: string;
  chatId: string;
  seq: number;
  payload: { type: 'message'; chatId: string; messageId: string; title: string; body: string } | { chatId: string; messageId: string };
}

/** Loads and opens a message for notifications; null if it is gone or deleted. */
export async function loadNotifiedMessage({ prisma, cipher }: Pick<NotificationDeps, 'prisma' | 'cipher'>, messageId: string): Promise<NotifiedMessage | null> {
  const message = await prisma.message.findUnique({
    where: { id: messageId },
    include: { chat: { select: { kind: true, title: true, encrypted: true } }, sender: { select: { displayName: true } } },
  });
  if (!message || message.deletedAt) return null;
  // No preview, no title (as Signal and WhatsApp): nothing of an encrypted chat leaves in the clear.
  if (message.chat.encrypted) return { id: message.id, chatId: message.chatId, seq: message.seq, payload: { chatId: message.chatId, messageId: message.id } };
  let text: string | null = null;
  if (message.content && message.contentKeyId) {
    const [plaintext] = await cipher.open([{ keyId: message.contentKeyId, aad: messageAad(message.id), ciphertext: message.content }]);
    text = decodeContent(plaintext!).text;
  }
  const preview = previewOf(message.kind, text);
  const group = message.chat.kind === 'GROUP';
  return {
    id: message.id,
    chatId: message.chatId,
    seq: message.seq,
    payload: {
      type: 'message',
      chatId: message.chatId,
      messageId: message.id,
      title: group ? (message.chat.title ?? 'Group') : message.sender.displayName,
      body: group ? `${message.sender.displayName}: ${preview}` : preview,
    },
  };
}

function previewOf(kind: string, text: string | null): string {
  const label = { IMAGE: '📷 Photo', FILE: '📎 File', VOICE: '🎤 Voice message', LOCATION: '📍 Location' }[kind];
  const body = text ? (text.length > PREVIEW_MAX ? `${text.slice(0, PREVIEW_MAX - 1)}…` : text) : '';
  if (!label) return body;
  return body ? `${label}: ${body}` : label;
}
