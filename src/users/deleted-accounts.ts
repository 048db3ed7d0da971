// Deleted accounts stay as rows (their messages and direct chats read as from a deleted account),
// but nobody finds them, starts a chat with them, adds them or messages them any more.
import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';

/** Users who have not deleted their account. */
export const activeUsers = { deletedAt: null } satisfies Prisma.UserWhereInput;

/** Whether the user deleted their account. */
export async function isDeletedAccount(prisma: PrismaClient, userId: string): Promise<boolean> {
  const user = await prisma.user.findUnique({ where: { id: userId }, select: { deletedAt: true } });
  return user?.deletedAt != null;
}

/** What others see as the username of a deleted account: a handle no one can register (too long, see USERNAME_PATTERN). */
export const deletedUsername = (userId: string) => `deleted_${userId.replaceAll('-', '')}`;
