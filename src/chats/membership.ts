// Who may do what in a chat. Non-members get NOT_FOUND, never FORBIDDEN: a chat's existence is
// itself private to its members.
import { forbidden, notFound } from '../errors.ts';
import type { ChatRole, Prisma, PrismaClient } from '../generated/prisma/client.ts';

export const CHAT_NOT_FOUND = 'Chat';

/** The chats a user may read: the ones they are a member of. */
export const chatsOfMember = (userId: string) => ({ members: { some: { userId } } }) satisfies Prisma.ChatWhereInput;

/** One chat, if the user may read it. */
export const chatOfMember = (chatId: string, userId: string) => ({ id: chatId, ...chatsOfMember(userId) }) satisfies Prisma.ChatWhereInput;

/** A chat list's order: most recent activity first (ties by id, so pages never overlap). */
export const CHATS_BY_ACTIVITY = [{ lastActivityAt: 'desc' }, { id: 'desc' }] satisfies Prisma.ChatOrderByWithRelationInput[];

export function findMembership(prisma: PrismaClient, chatId: string, userId: string) {
  return prisma.chatMember.findUnique({
    where: { chatId_userId: { chatId, userId } },
    include: { chat: { select: { id: true, kind: true, directKey: true, isPublic: true, encrypted: true } } },
  });
}

/** The caller's membership, or NOT_FOUND as if the chat did not exist. */
export async function requireMembership(prisma: PrismaClient, chatId: string, userId: string) {
  const membership = await findMembership(prisma, chatId, userId);
  if (!membership) throw notFound(CHAT_NOT_FOUND);
  return membership;
}

/** The membership back if its role is one of `roles`; FORBIDDEN for other members. */
export function requireRole<M extends { role: ChatRole }>(membership: M, roles: ChatRole[], action: string): M {
  if (!roles.includes(membership.role)) throw forbidden(`Only ${roles.join(' or ')} members can ${action}.`);
  return membership;
}

/** The other member of a direct chat, from its key (`<id>:<id>`, `:e2e` after it for an encrypted one). */
export function directPartner(directKey: string, userId: string): string | undefined {
  return directKey.split(':').slice(0, 2).find((id) => id !== userId);
}
