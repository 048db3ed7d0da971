// Batch loaders for reactions: a page of messages costs one query for its reaction groups, and
// one per distinct `first` (plus one for the users) for the reactors the client lists. Reactions
// across a block (by users the viewer blocked, or who blocked the viewer, as typing and presence
// are hidden) are left out of both, in the same queries.
import DataLoader from 'dataloader';
import { Prisma, type PrismaClient, type User } from '../generated/prisma/client.ts';

export interface ReactionGroup {
  messageId: string;
  emoji: string;
  count: number;
  viewerReacted: boolean;
}

export interface ReactorsKey {
  messageId: string;
  emoji: string;
  /** Reactors wanted; one more is read to tell whether there are further ones. */
  first: number;
}

export interface Reactors {
  users: User[];
  hasMore: boolean;
}

/** Reaction `r` is not by someone the viewer blocked or who blocked the viewer. */
const notAcrossBlock = (viewerId: string | null) => Prisma.sql`NOT EXISTS (
  SELECT 1 FROM "UserBlock" b
  WHERE (b."blockerId" = ${viewerId} AND b."blockedId" = r."userId") OR (b."blockerId" = r."userId" AND b."blockedId" = ${viewerId}))`;

export function createReactionLoaders(prisma: PrismaClient, viewerId: () => string | undefined) {
  return {
    /** Each message's reactions grouped by emoji, in the order each emoji was first used. */
    reactionGroups: new DataLoader<string, ReactionGroup[]>(async (messageIds) => {
      const rows = await prisma.$queryRaw<ReactionGroup[]>`
        SELECT r."messageId", r."emoji", count(*)::int AS "count", coalesce(bool_or(r."userId" = ${viewerId() ?? null}), false) AS "viewerReacted"
        FROM "MessageReaction" r
        WHERE r."messageId" IN (${Prisma.join([...messageIds])}) AND ${notAcrossBlock(viewerId() ?? null)}
        GROUP BY r."messageId", r."emoji"
        ORDER BY min(r."createdAt"), r."emoji"`;
      const byMessage = new Map<string, ReactionGroup[]>(messageIds.map((id) => [id, []]));
      for (const row of rows) byMessage.get(row.messageId)!.push(row);
      return messageIds.map((id) => byMessage.get(id)!);
    }),

    /** The first reactors of each (message, emoji), earliest first. */
    reactors: new DataLoader<ReactorsKey, Reactors, string>(
      async (keys) => {
        const found = new Map<string, string[]>();
        for (const first of new Set(keys.map((key) => key.first))) {
          const pairs = keys.filter((key) => key.first === first).map((key) => Prisma.sql`(${key.messageId}, ${key.emoji})`);
          const rows = await prisma.$queryRaw<Array<{ messageId: string; emoji: string; userId: string }>>`
            SELECT "messageId", "emoji", "userId" FROM (
              SELECT r."messageId", r."emoji", r."userId",
                     row_number() OVER (PARTITION BY r."messageId", r."emoji" ORDER BY r."createdAt", r."userId") AS position
              FROM "MessageReaction" r
              WHERE (r."messageId", r."emoji") IN (${Prisma.join(pairs)}) AND ${notAcrossBlock(viewerId() ?? null)}
            ) ranked
            WHERE position <= ${first + 1}
            ORDER BY position`;
          for (const row of rows) {
            const key = reactorsKey({ ...row, first });
            found.set(key, [...(found.get(key) ?? []), row.userId]);
          }
        }
        const userIds = [...new Set([...found.values()].flat())];
        const users = userIds.length ? await prisma.user.findMany({ where: { id: { in: userIds } } }) : [];
        const byId = new Map(users.map((user) => [user.id, user]));
        return keys.map((key) => {
          const ids = found.get(reactorsKey(key)) ?? [];
          return { users: ids.slice(0, key.first).map((id) => byId.get(id)!).filter(Boolean), hasMore: ids.length > key.first };
        });
      },
      { cacheKeyFn: (key) => reactorsKey(key) },
    ),
  };
}

const reactorsKey = (key: ReactorsKey) => JSON.stringify([key.messageId, key.emoji, key.first]);
