// Mentions: `@username` of a chat member, and `@all` (every member) in a group when an owner or
// admin writes it. Resolved into MessageMention rows with the message (in the send's own
// statement, so its push notifications see them) and again when its text is edited (members the
// edit newly mentions get a push; those mentioned before get none again).
import { Prisma } from '../generated/prisma/client.ts';

/** Different usernames one message can mention; further ones stay plain text. */
export const MENTIONS_MAX = 50;
export const MENTION_ALL = 'all';

// Not inside a word or an email address (`bob@example.com`); a username is 3 to 32 of [a-z0-9_].
const MENTION = /(?<![\p{L}\p{N}_@.])@([a-z0-9_]{3,32})(?![\p{L}\p{N}_])/giu;

export interface ParsedMentions {
  usernames: string[];
  all: boolean;
}

export function parseMentions(text: string | null | undefined): ParsedMentions {
  const names = new Set<string>();
  let all = false;
  for (const [, name] of (text ?? '').matchAll(MENTION)) {
    const username = name!.toLowerCase();
    if (username === MENTION_ALL) all = true;
    else if (names.size < MENTIONS_MAX) names.add(username);
  }
  return { usernames: [...names], all };
}

interface MentionTarget {
  messageId: string;
  chatId: string;
  senderId: string;
}

/**
 * `INSERT` of the mentions of `text` into `MessageMention`: members named (other than the writer,
 * deleted accounts aside), and with `@all` from a group's owner or admin every other member.
 * `guard` is a further condition (the send's: that its message was inserted).
 */
function mentionsInsert({ messageId, chatId, senderId }: MentionTarget, { usernames, all }: ParsedMentions, guard: Prisma.Sql) {
  const named = usernames.length ? Prisma.sql`u."username" IN (${Prisma.join(usernames)})` : Prisma.sql`FALSE`;
  const everyone = all
    ? Prisma.sql`EXISTS (SELECT 1 FROM "Chat" c JOIN "ChatMember" w ON w."chatId" = c."id"
        WHERE c."id" = ${chatId} AND c."kind" = 'GROUP' AND w."userId" = ${senderId} AND w."role" IN ('OWNER', 'ADMIN'))`
    : Prisma.sql`FALSE`;
  return Prisma.sql`
    INSERT INTO "MessageMention" ("messageId", "userId", "chatId", "viaAll")
    SELECT ${messageId}, m."userId", ${chatId}, NOT (${named})
    FROM "ChatMember" m JOIN "User" u ON u."id" = m."userId"
    WHERE m."chatId" = ${chatId} AND m."userId" <> ${senderId} AND u."deletedAt" IS NULL
      AND ((${named}) OR (${everyone})) ${guard}`;
}

/** For sendMessage's statement, after its `inserted` CTE: nothing at all for a text without `@`. */
export function mentionsCte(target: MentionTarget, text: string | null) {
  const parsed = parseMentions(text);
  if (!parsed.all && parsed.usernames.length === 0) return Prisma.empty;
  return Prisma.sql`, mentioned AS (${mentionsInsert(target, parsed, Prisma.sql`AND EXISTS (SELECT 1 FROM inserted)`)})`;
}

/**
 * After an edit (in its transaction): the mentions of the new text replace the old ones. Returns
 * the users mentioned now who were not before, whose push the edit owes (queueMentionPushes).
 */
export async function replaceMentions(tx: Prisma.TransactionClient, target: MentionTarget, text: string | null): Promise<string[]> {
  const before = await tx.$queryRaw<Array<{ userId: string }>>`
    DELETE FROM "MessageMention" WHERE "messageId" = ${target.messageId} RETURNING "userId"`;
  const parsed = parseMentions(text);
  if (!parsed.all && parsed.usernames.length === 0) return [];
  const after = await tx.$queryRaw<Array<{ userId: string }>>`${mentionsInsert(target, parsed, Prisma.empty)} RETURNING "userId"`;
  const had = new Set(before.map((row) => row.userId));
  return after.map((row) => row.userId).filter((userId) => !had.has(userId));
}

/**
 * In the edit's transaction: the pushes owed to `userIds`, newly mentioned by edit `editId`, wait
 * in the notification outbox beside the sends' until the relay hands them on
 * (src/notifications/outbox.ts), so a crash after the commit loses none. Whether there were any
 * (then the relay is kicked).
 */
export async function queueMentionPushes(tx: Prisma.TransactionClient, editId: string, messageId: string, userIds: string[]): Promise<boolean> {
  if (userIds.length === 0) return false;
  await tx.notificationOutbox.create({ data: { id: editId, messageId, mentionedUserIds: userIds } });
  return true;
}
