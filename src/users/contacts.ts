// Contact lists and blocking.
import { badUserInput, notFound } from '../errors.ts';
import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';
import { activeUsers } from './deleted-accounts.ts';

/** The users in someone's contact list. */
export const contactsOf = (ownerId: string) => ({ contactOf: { some: { ownerId } } }) satisfies Prisma.UserWhereInput;

/** Contact lists are ordered by username. */
export const CONTACTS_BY_USERNAME = { username: 'asc' } satisfies Prisma.UserOrderByWithRelationInput;

/** Blocks listed at most (a list, not a connection: nobody blocks thousands). */
export const BLOCKED_USERS_MAX = 1_000;

/** The blocks someone made, most recent first. */
export const blocksBy = (blockerId: string) =>
  ({ where: { blockerId }, orderBy: { createdAt: 'desc' }, take: BLOCKED_USERS_MAX }) satisfies Prisma.UserBlockFindManyArgs;

/** Users other than `viewerId` may find, and so add to a chat or their contacts: not those who blocked them. */
export const notBlocking = (viewerId: string) => ({ blocks: { none: { blockedId: viewerId } } }) satisfies Prisma.UserWhereInput;

/** NOT_FOUND unless `userId` is someone else who exists (and, with `hideBlockers`, has not blocked the viewer, which answers the same). */
async function requireOtherUser(prisma: PrismaClient, viewerId: string, userId: string, action: string, { hideBlockers = false } = {}) {
  if (userId === viewerId) throw badUserInput('userId', `You cannot ${action} yourself.`);
  const user = await prisma.user.findFirst({ where: { id: userId, ...activeUsers, ...(hideBlockers ? notBlocking(viewerId) : {}) }, select: { id: true } });
  if (!user) throw notFound('User');
}

/** Adds a user to the viewer's contacts (adding twice is harmless); someone who blocked the viewer is NOT_FOUND, as if there were none. */
export async function addContact(prisma: PrismaClient, viewerId: string, userId: string) {
  await requireOtherUser(prisma, viewerId, userId, 'add', { hideBlockers: true });
  await prisma.contact.createMany({ data: [{ ownerId: viewerId, userId }], skipDuplicates: true });
}

/** Whether the user was in the viewer's contacts. */
export async function removeContact(prisma: PrismaClient, viewerId: string, userId: string): Promise<boolean> {
  const { count } = await prisma.contact.deleteMany({ where: { ownerId: viewerId, userId } });
  return count > 0;
}

/**
 * Blocks a user: no direct chat between the two (new or existing), and the blocked user no longer
 * sees the viewer's presence or typing. Group chats they share stay shared.
 */
export async function blockUser(prisma: PrismaClient, viewerId: string, userId: string) {
  await requireOtherUser(prisma, viewerId, userId, 'block');
  await prisma.userBlock.createMany({ data: [{ blockerId: viewerId, blockedId: userId }], skipDuplicates: true });
}

/** Whether the user was blocked. */
export async function unblockUser(prisma: PrismaClient, viewerId: string, userId: string): Promise<boolean> {
  const { count } = await prisma.userBlock.deleteMany({ where: { blockerId: viewerId, blockedId: userId } });
  return count > 0;
}

/** Of `userIds`, those who blocked `viewerId`. */
export async function blockersAmong(prisma: PrismaClient, viewerId: string, userIds: readonly string[]): Promise<Set<string>> {
  if (userIds.length === 0) return new Set();
  const rows = await prisma.userBlock.findMany({
    where: { blockedId: viewerId, blockerId: { in: [...userIds] } },
    select: { blockerId: true },
  });
  return new Set(rows.map((row) => row.blockerId));
}
