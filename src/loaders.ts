// Per-request batch loaders: a page of 50 messages or 20 chats costs one query (or one decryption
// batch) per kind of data, not one per item.
import DataLoader from 'dataloader';
import type { ContentCipher } from './crypto/content-cipher.ts';
import { createDraftLoaders } from './chats/draft-loaders.ts';
import { countsAsUnread } from './chats/unread.ts';
import { createDeviceLoaders } from './devices/loaders.ts';
import { createForwardLoaders } from './messages/forward-loaders.ts';
import { createMentionLoaders } from './messages/mention-loaders.ts';
import { createReactionLoaders } from './messages/reaction-loaders.ts';

import { createThreadLoaders } from './messages/threads.ts';
import { Prisma, type ChatMember, type PrismaClient, type User } from './generated/prisma/client.ts';
import { findNodes, type NodeValue } from './nodes/lookup.ts';
import type { PresenceTracker } from './realtime/presence/tracker.ts';
import { blockersAmong } from './users/contacts.ts';

/** Read receipts (`Message.readBy`) are listed for chats up to this size. */
export const READ_RECEIPTS_MAX_MEMBERS = 50;

export interface SealedItem {
  aad: string;
  keyId: string;
  ciphertext: Uint8Array;
}

export interface ChatReader {
  user: User;
  lastReadSeq: number;
}

export type Loaders = ReturnType<typeof createLoaders>;

export function createLoaders(
  { prisma, cipher, presence }: { prisma: PrismaClient; cipher: ContentCipher; presence: PresenceTracker },
  viewerId: () => string | undefined,
  viewerSessionId: () => string | undefined,
) {
  return {
    ...createDeviceLoaders(prisma, viewerSessionId),
    ...createReactionLoaders(prisma, viewerId),
    ...createMentionLoaders(prisma, viewerId),
    ...createForwardLoaders(prisma),
    ...createDraftLoaders(prisma, viewerId),

    ...createThreadLoaders(prisma, viewerId),

    /** Whether each user blocked the viewer (then the viewer sees no presence of theirs). */
    blockedViewer: new DataLoader<string, boolean>(async (userIds) => {
      const userId = viewerId();
      const blockers = userId ? await blockersAmong(prisma, userId, userIds) : new Set<string>();
      return userIds.map((id) => blockers.has(id));
    }),

    /** Whether each user has a live connection (for the status others see). */
    online: new DataLoader<string, boolean>(async (userIds) => {
      const online = await presence.onlineUserIds(userIds);
      return userIds.map((id) => online.has(id));
    }),

    /** Plaintext of sealed content; one `cipher.open` call per batch. */
    // Keyed by the random IV too: an edited message keeps its AAD but gets a new ciphertext.
    plaintext: new DataLoader<SealedItem, Uint8Array, string>(async (items) => {
      try {
        return await cipher.open([...items]);
      } catch {
        // One bad row must not fail the whole page: open one by one and fail only that field.
        return Promise.all(items.map((item) => cipher.open([item]).then(([plaintext]) => plaintext!, (error: Error) => error)));
      }
    }, {
      cacheKeyFn: (item) => `${item.aad}/${Buffer.from(item.ciphertext.subarray(0, 12)).toString('base64')}`,
    }),

    /** Node lookups by id (`node`/`nodes`, aliases too): one batch per request; null when absent or not visible. */
    node: new DataLoader<string, NodeValue | null>(async (ids) => {
      const userId = viewerId();
      return userId ? findNodes(prisma, userId, ids) : ids.map(() => null);
    }),

    /** The viewer's membership of each chat (null: not a member). */
    membership: new DataLoader<string, ChatMember | null>(async (chatIds) => {
      const userId = viewerId();
      if (!userId) return chatIds.map(() => null);
      const rows = await prisma.chatMember.findMany({ where: { userId, chatId: { in: [...chatIds] } } });
      const byChat = new Map(rows.map((row) => [row.chatId, row]));
      return chatIds.map((id) => byChat.get(id) ?? null);
    }),

    /** Messages after the viewer's read position that count as unread (others', not deleted, not thread replies). */
    unreadCount: new DataLoader<string, number>(async (chatIds) => {
      const userId = viewerId();
      if (!userId) return chatIds.map(() => 0);
      const rows = await prisma.$queryRaw<Array<{ chatId: string; unread: number }>>`
        SELECT m."chatId", count(*)::int AS unread
        FROM "ChatMember" cm
        JOIN "Message" m ON m."chatId" = cm."chatId" AND m."seq" > cm."lastReadSeq"
        WHERE cm."userId" = ${userId} AND cm."chatId" IN (${Prisma.join([...chatIds])})
          AND ${countsAsUnread('m', Prisma.sql`${userId}`)}
        GROUP BY m."chatId"`;
      const byChat = new Map(rows.map((row) => [row.chatId, row.unread]));
      return chatIds.map((id) => byChat.get(id) ?? 0);
    }),

    /** Members and read positions of small chats (null for chats too large for read receipts). */
    chatReaders: new DataLoader<string, ChatReader[] | null>(async (chatIds) => {
      const sizes = await prisma.chatMember.groupBy({ by: ['chatId'], where: { chatId: { in: [...chatIds] } }, _count: true });
      const small = sizes.filter((s) => s._count <= READ_RECEIPTS_MAX_MEMBERS).map((s) => s.chatId);
      const rows = small.length
        ? await prisma.chatMember.findMany({ where: { chatId: { in: small } }, include: { user: true }, orderBy: { joinedAt: 'asc' } })
        : [];
      const byChat = new Map<string, ChatReader[]>(small.map((id) => [id, []]));
      for (const row of rows) byChat.get(row.chatId)!.push({ user: row.user, lastReadSeq: row.lastReadSeq });
      return chatIds.map((id) => byChat.get(id) ?? null);
    }),
  };
}
