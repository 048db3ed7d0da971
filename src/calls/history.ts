// Calls in the chat's timeline: each call is a message of kind CALL from its caller, taking its
// place (seq) like any message, so it counts as unread and shows as "missed voice call" or
// "video call, 12 min". The message holds no content: what it shows is the call's row.
import type { Call, Prisma } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';

/**
 * Adds the CALL message in the chat's next position, under the chat row's lock as sendMessage
 * does. It has no outbox row: calls notify with their own pushes (ringing, missed).
 */
export async function insertCallMessage(tx: Prisma.TransactionClient, chatId: string, senderId: string): Promise<{ id: string; seq: number }> {
  const id = uuidv7();
  const rows = await tx.$queryRaw<Array<{ id: string; seq: number }>>`
    WITH position AS (
      UPDATE "Chat" SET "lastSeq" = "lastSeq" + 1, "lastMessageId" = ${id}, "lastActivityAt" = now()
      WHERE "id" = ${chatId}
      RETURNING "lastSeq"
    )
    INSERT INTO "Message" ("id", "chatId", "seq", "senderId", "kind", "createdAt")
    SELECT ${id}, ${chatId}, position."lastSeq", ${senderId}, 'CALL'::"MessageKind", now() FROM position
    RETURNING "id", "seq"`;
  if (!rows[0]) throw new Error(`chat ${chatId} vanished while a call started`);
  return rows[0];
}

/** Seconds from the answer to the end (to now while it runs); null for a call nobody answered. */
export function durationSeconds(call: Pick<Call, 'answeredAt' | 'endedAt'>, now = Date.now()): number | null {
  if (!call.answeredAt) return null;
  return Math.max(0, Math.floor(((call.endedAt?.getTime() ?? now) - call.answeredAt.getTime()) / 1000));
}
