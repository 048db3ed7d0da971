// Threads: replies posted under a root message of the same chat. They are messages of the chat
// (its seq order, its messageEvents) marked with `threadRootId`. Following is derived: the root's
// sender and everyone who replied follow the thread, unless they chose otherwise (ThreadFollow).
import DataLoader from 'dataloader';
import { Prisma, type PrismaClient } from '../generated/prisma/client.ts';
import { badUserInput, notFound } from '../errors.ts';
import { findMembership } from '../chats/membership.ts';

/** Participants a summary lists at most (the first ones to reply). */
export const THREAD_PARTICIPANTS_MAX = 100;

/** The condition on the chat row `c` of a send that a thread root is: a live message of the chat that is no reply itself. */
export const threadRootCondition = (threadRootId: string | null) =>
  threadRootId == null
    ? Prisma.empty
    : Prisma.sql`AND EXISTS (SELECT 1 FROM "Message" r WHERE r."id" = ${threadRootId} AND r."chatId" = c."id"
          AND r."threadRootId" IS NULL AND r."deletedAt" IS NULL)`;

/** Why threadRootCondition refused, or null. */
export async function threadRootProblem(prisma: PrismaClient, chatId: string, threadRootId: string | null) {
  if (threadRootId == null) return null;
  const root = await prisma.message.findFirst({ where: { id: threadRootId, chatId }, select: { threadRootId: true, deletedAt: true } });
  if (!root) return badUserInput('input.threadRootId', 'The thread root is not a message of this chat.');
  if (root.threadRootId) return badUserInput('input.threadRootId', 'A thread reply cannot be a thread root: reply in its thread instead.');
  if (root.deletedAt) return badUserInput('input.threadRootId', 'The thread root was deleted.');
  return null;
}

/**
 * SQL: whether user `userId` follows the thread under `rootId`: their own choice if they made one,
 * else whether they sent the root or a (live) reply. Its subqueries' aliases (tf, troot, treply)
 * must differ from the caller's, or they would capture `rootId` and `userId`. The root and reply
 * probes' OFFSET 0 keeps each a probe of an index per row: without it PostgreSQL may
 * turn the EXISTS into a hashed IN over every live message of every chat (PostgreSQL 18 did, on
 * the small tables of test/send-path.test.ts), a cost that grows with the whole table.
 */
export const followsThread = (rootId: Prisma.Sql, userId: Prisma.Sql) => Prisma.sql`coalesce(
    (SELECT tf."following" FROM "ThreadFollow" tf WHERE tf."rootId" = ${rootId} AND tf."userId" = ${userId}),
    EXISTS (SELECT 1 FROM "Message" troot WHERE troot."id" = ${rootId} AND troot."senderId" = ${userId} OFFSET 0)
    OR EXISTS (SELECT 1 FROM "Message" treply WHERE treply."threadRootId" = ${rootId} AND treply."senderId" = ${userId} AND treply."deletedAt" IS NULL OFFSET 0))`;

/** Sets the viewer's choice to follow (or not) the thread under a message they can see. */
export async function setThreadFollowing({ prisma }: { prisma: PrismaClient }, viewerId: string, messageId: string, following: boolean) {
  const message = await prisma.message.findUnique({ where: { id: messageId } });
  if (!message || !(await findMembership(prisma, message.chatId, viewerId))) throw notFound('Message');
  if (message.threadRootId) throw badUserInput('messageId', 'This is a thread reply: follow its thread root instead.');
  await prisma.threadFollow.upsert({
    where: { rootId_userId: { rootId: message.id, userId: viewerId } },
    create: { rootId: message.id, userId: viewerId, following },
    update: { following },
  });
  return message;
}

export interface ThreadSummary {
  rootId: string;
  replyCount: number;
  lastReplyAt: Date;
  /** Users who replied, in the order of their first reply (up to THREAD_PARTICIPANTS_MAX). */
  participantIds: string[];
}

/** Batch loaders for a page of messages: thread summaries, and whether the viewer follows each thread. */
export function createThreadLoaders(prisma: PrismaClient, viewerId: () => string | undefined) {
  return {
    /** Each root's summary: null without live replies. */
    threadSummary: new DataLoader<string, ThreadSummary | null>(async (rootIds) => {
      const rows = await prisma.$queryRaw<Array<{ rootId: string; senderId: string; replies: number; lastAt: Date; firstSeq: number }>>`
        SELECT "threadRootId" AS "rootId", "senderId", count(*)::int AS "replies", max("createdAt") AS "lastAt", min("seq") AS "firstSeq"
        FROM "Message" WHERE "threadRootId" IN (${Prisma.join([...rootIds])}) AND "deletedAt" IS NULL
        GROUP BY "threadRootId", "senderId"`;
      return rootIds.map((rootId) => {
        const mine = rows.filter((row) => row.rootId === rootId).sort((a, b) => a.firstSeq - b.firstSeq);
        if (mine.length === 0) return null;
        return {
          rootId,
          replyCount: mine.reduce((sum, row) => sum + row.replies, 0),
          lastReplyAt: new Date(Math.max(...mine.map((row) => row.lastAt.getTime()))),
          participantIds: mine.slice(0, THREAD_PARTICIPANTS_MAX).map((row) => row.senderId),
        };
      });
    }),

    /** Whether the viewer follows the thread under each root. */
    viewerFollowsThread: new DataLoader<string, boolean>(async (rootIds) => {
      const userId = viewerId();
      if (!userId) return rootIds.map(() => false);
      const rows = await prisma.$queryRaw<Array<{ id: string; following: boolean }>>`
        SELECT r.id, ${followsThread(Prisma.sql`r.id`, Prisma.sql`${userId}`)} AS following
        FROM unnest(${[...rootIds]}::text[]) AS r(id)`;
      const following = new Map(rows.map((row) => [row.id, row.following]));
      return rootIds.map((id) => following.get(id) ?? false);
    }),
  };
}
