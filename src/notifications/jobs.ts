// The two notification jobs, as plain functions of their input and dependencies. The BullMQ worker
// and the in-process runner call the same code.
import { createHash } from 'node:crypto';
import type { ContentCipher } from '../crypto/content-cipher.ts';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { countsAsUnread, totalUnreadSql } from '../chats/unread.ts';
import { decodeContent, messageAad } from '../messages/content.ts';
import { followsThread } from '../messages/threads.ts';
import type { PresenceReader } from '../realtime/presence/reader.ts';
import type { PushOptions, PushSender, PushTarget } from './web-push.ts';

export interface FanOutJob {
  messageId: string;
}

/** The pushes an edit owes the members it newly mentioned (src/messages/mentions.ts). */
export interface MentionFanOutJob {
  messageId: string;
  editId: string;
  userIds: string[];
}

export interface DeliveryJob {
  messageId: string;
  subscriptionId: string;
  /** A push for the mention this edit added, not for the message's send. */
  editId?: string;
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
  /**
   * A message as every recipient's notification shows it (cached: one message has many recipients);
   * `editId`: as that edit left it (a cache entry of its own, the text changed).
   */
  notifiedMessage(messageId: string, editId?: string): Promise<NotifiedMessage | null>;
}

/** Seconds a push service keeps a notification for an unreachable device. */
const PUSH_TTL_SECONDS = 24 * 3600;
const PREVIEW_MAX = 120;

/** One device that hears about one message (see recipientsOf). */
export interface Recipient {
  messageId: string;
  userId: string;
  subscriptionId: string;
  /** For an edit's new mention (fanOutMention). */
  editId?: string;
}

/**
 * Who hears about the message whose id `messageId` evaluates to, as one SQL fragment (one round trip,
 * on the ChatMember, PushSubscription, Session and UserBlock keys): every registered device of a live
 * session of every member but the sender who has not muted the chat (or is mentioned in the message,
 * src/messages/mentions.ts) and has not blocked the sender. With `mentionedOnly` (a `text[]`
 * expression; NULL means everyone), only those of these users the message mentions now: an edit's
 * newly mentioned members (fanOutMention). Nothing for a deleted message.
 */
export const recipientsOf = (messageId: Prisma.Sql, mentionedOnly?: Prisma.Sql) => Prisma.sql`
  SELECT m."id" AS "messageId", cm."userId", s."id" AS "subscriptionId"
  FROM "Message" m
  -- Laterals with OFFSET 0 fix the order message -> its members -> their devices, each an index
  -- probe. As plain joins inside the outbox relay's LATERAL (a row's mentionedUserIds in the
  -- predicate), the planner hashed the whole ChatMember table for every outbox row: ~9 ms per
  -- message at 70,000 memberships, the embedded mode's PostgreSQL time (bench/RESULTS.md).
  CROSS JOIN LATERAL (SELECT c."userId", c."mutedUntil" FROM "ChatMember" c WHERE c."chatId" = m."chatId" AND c."userId" <> m."senderId" OFFSET 0) cm
  CROSS JOIN LATERAL (SELECT p."id", p."sessionId" FROM "PushSubscription" p WHERE p."userId" = cm."userId" OFFSET 0) s
  JOIN "Session" se ON se."id" = s."sessionId" AND se."revokedAt" IS NULL AND se."expiresAt" > now()
  WHERE m."id" = ${messageId} AND m."deletedAt" IS NULL
    -- A thread reply reaches the thread's followers, muted chat or not (and no one else); a mention
    -- reaches its member in a muted chat too.
    AND (CASE WHEN m."threadRootId" IS NULL THEN cm."mutedUntil" IS NULL OR cm."mutedUntil" <= now()
              ELSE ${followsThread(Prisma.sql`m."threadRootId"`, Prisma.sql`cm."userId"`)} END
      OR EXISTS (SELECT 1 FROM "MessageMention" mm WHERE mm."messageId" = m."id" AND mm."userId" = cm."userId"))
    AND NOT EXISTS (SELECT 1 FROM "UserBlock" b WHERE b."blockerId" = cm."userId" AND b."blockedId" = m."senderId")
    ${mentionedOnly ? Prisma.sql`AND (${mentionedOnly} IS NULL OR (cm."userId" = ANY(${mentionedOnly})
      AND EXISTS (SELECT 1 FROM "MessageMention" mm WHERE mm."messageId" = m."id" AND mm."userId" = cm."userId")))` : Prisma.empty}`;

/**
 * Queues a delivery per recipient device, except to users with a live connection anywhere (a
 * connected client gets the event over its socket instead): that is decided before any job exists.
 */
export async function enqueueForOffline(deps: Pick<NotificationDeps, 'presence' | 'enqueueDeliveries'>, recipients: readonly Recipient[]): Promise<number> {
  if (recipients.length === 0) return 0;
  const online = await deps.presence.onlineUserIds([...new Set(recipients.map((r) => r.userId))]);
  const jobs = recipients
    .filter((r) => !online.has(r.userId))
    .map(({ messageId, subscriptionId, editId }) => (editId ? { messageId, subscriptionId, editId } : { messageId, subscriptionId }));
  await deps.enqueueDeliveries(jobs);
  return jobs.length;
}

/** The fan-out job (the worker's, with Redis): one query for the recipients, then their deliveries. */
export async function fanOut(deps: NotificationDeps, { messageId }: FanOutJob): Promise<number> {
  const recipients = await deps.prisma.$queryRaw<Recipient[]>(recipientsOf(Prisma.sql`${messageId}`));
  return enqueueForOffline(deps, recipients);
}

/**
 * The fan-out of an edit's new mentions: the devices of those still mentioned (still members, not
 * blocking the sender), as for a send's mention, then their deliveries (jobs of their own, so the
 * send's earlier push to the same device does not stand in for this one).
 */
export async function fanOutMention(deps: NotificationDeps, { messageId, editId, userIds }: MentionFanOutJob): Promise<number> {
  const recipients = await deps.prisma.$queryRaw<Recipient[]>(recipientsOf(Prisma.sql`${messageId}`, Prisma.sql`${userIds}::text[]`));
  return enqueueForOffline(deps, recipients.map((recipient) => ({ ...recipient, editId })));
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
  const message = await deps.notifiedMessage(job.messageId, job.editId);
  if (!message) return 'skipped';
  // One statement for everything that is the recipient's own and must be fresh.
  const [state] = await prisma.$queryRaw<Array<{ lastReadSeq: number; muted: boolean; mentioned: boolean; deleted: boolean; newer: boolean; unread: number; badge: number }>>`
    SELECT cm."lastReadSeq",
           -- A thread reply reaches a follower of its thread even in a muted chat.
           coalesce(cm."mutedUntil" > now(), false) AND NOT coalesce((SELECT ${followsThread(Prisma.sql`t."threadRootId"`, Prisma.sql`cm."userId"`)}
             FROM "Message" t WHERE t."id" = ${message.id} AND t."threadRootId" IS NOT NULL), false) AS muted,
           EXISTS (SELECT 1 FROM "MessageMention" mm WHERE mm."messageId" = ${message.id} AND mm."userId" = cm."userId") AS mentioned,
           (SELECT m."deletedAt" IS NOT NULL FROM "Message" m WHERE m."id" = ${message.id}) AS deleted,
           -- Only a newer message that notifies this member tells of this one (see fanOut).
           EXISTS (SELECT 1 FROM "Message" n WHERE n."chatId" = cm."chatId" AND n."seq" > ${message.seq}
                     AND n."senderId" <> cm."userId" AND n."deletedAt" IS NULL
                     AND CASE WHEN n."threadRootId" IS NULL THEN NOT coalesce(cm."mutedUntil" > now(), false)
                              ELSE ${followsThread(Prisma.sql`n."threadRootId"`, Prisma.sql`cm."userId"`)} END) AS newer,
           (SELECT count(*)::int FROM "Message" u WHERE u."chatId" = cm."chatId" AND u."seq" > cm."lastReadSeq"
                     AND ${countsAsUnread('u', Prisma.sql`cm."userId"`)}) AS unread,
           ${totalUnreadSql(Prisma.sql`cm."userId"`)} AS badge
    FROM "ChatMember" cm WHERE cm."chatId" = ${message.chatId} AND cm."userId" = ${subscription.userId}`;
  // A mention is told even in a muted chat, and on its own: a later message does not stand in for it.
  if (!state || (state.muted && !state.mentioned) || state.deleted || state.lastReadSeq >= message.seq) return 'skipped';
  // An edit's push is for its mention alone: none once a later edit took the mention out again.
  if (job.editId && !state.mentioned) return 'skipped';
  if (state.newer && !state.mentioned) return 'collapsed';

  // `badge`: the recipient's unread messages over all chats (User.totalUnreadCount), for the app icon.
  const payload = JSON.stringify({
    ...message.payload,
    unread: state.unread,
    badge: state.badge,
    ...(state.mentioned ? { mention: true } : {}),
    ...(job.editId ? { edited: true } : {}),
  });
  const topic = chatTopic(state.mentioned ? `${message.chatId}:mention:${message.id}` : message.chatId);
  return sendToSubscription(deps, subscription, payload, { topic, ttlSeconds: PUSH_TTL_SECONDS, urgency: state.mentioned ? 'high' : 'normal' });
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
