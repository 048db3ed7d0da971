// Direct and group chats: creation, membership and roles.
import { z } from 'zod';
import type { Services } from '../services.ts';
import { badUserInput, forbidden, notFound } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';
import type { Chat, ChatKind, ChatRole, Prisma } from '../generated/prisma/client.ts';
import { isBlockedEitherWay } from '../users/blocking.ts';
import { activeUsers } from '../users/deleted-accounts.ts';
import { notBlocking } from '../users/contacts.ts';
import { parseInput } from '../validation.ts';
import { CHAT_NOT_FOUND, requireMembership, requireRole } from './membership.ts';

type ChatServices = Pick<Services, 'prisma' | 'events'>;

export const TITLE_MAX = 128;
/** Members a group can have; fan-out of every message grows with it. */
export const GROUP_MAX_MEMBERS = 5_000;
/** Members that can be added in one call. */
export const ADD_MEMBERS_MAX = 500;

const titleSchema = z
  .string()
  .trim()
  .min(1, 'Title cannot be empty.')
  .max(TITLE_MAX, `Title must be at most ${TITLE_MAX} characters.`);

const idListSchema = (max: number) =>
  z
    .array(z.string())
    .max(max, `At most ${max} users at once.`)
    .transform((ids) => [...new Set(ids)]);

export interface CreateChatInput {
  kind: ChatKind;
  title?: string | null;
  memberIds: readonly (string | number)[];
  isPublic?: boolean | null;
  /** End-to-end encrypted (sendEncryptedMessage only). Default false. */
  encrypted?: boolean | null;
}

/** Creates a chat with the viewer in it. A direct chat that already exists is returned as it is. */
export async function createChat(services: ChatServices, viewerId: string, input: CreateChatInput): Promise<Chat> {
  const memberIds = parseInput(idListSchema(ADD_MEMBERS_MAX), input.memberIds.map(String), 'input.memberIds').filter(
    (id) => id !== viewerId,
  );
  const { chat, created } =
    input.kind === 'DIRECT'
      ? await createDirectChat(services, viewerId, memberIds, input)
      : { chat: await createGroupChat(services, viewerId, memberIds, input), created: true };
  if (created) {
    const affected = [viewerId, ...memberIds].map((userId) => ({ userId, member: true }));
    await services.events.chat(chat.id, 'CREATED', viewerId, { affected });
  }
  return chat;
}

async function createDirectChat({ prisma }: ChatServices, viewerId: string, memberIds: string[], input: CreateChatInput) {
  if (memberIds.length !== 1) throw badUserInput('input.memberIds', 'A direct chat has exactly one other member.');
  if (input.title != null) throw badUserInput('input.title', 'Direct chats have no title.');
  if (input.isPublic) throw badUserInput('input.isPublic', 'Direct chats cannot be public.');
  const otherId = memberIds[0]!;
  await assertUsersExist(prisma, viewerId, [otherId], 'input.memberIds', { hideBlockers: false });
  if (await isBlockedEitherWay(prisma, viewerId, otherId)) throw forbidden('You cannot start a chat with this user.');

  // A pair has one plaintext and one encrypted direct chat; directPartner reads both keys.
  const directKey = [viewerId, otherId].sort().join(':') + (input.encrypted ? ':e2e' : '');
  const existing = await prisma.chat.findUnique({ where: { directKey } });
  if (existing) return { chat: existing, created: false };
  try {
    const chat = await prisma.chat.create({
      data: {
        kind: 'DIRECT',
        directKey,
        encrypted: input.encrypted ?? false,
        createdById: viewerId,
        members: { create: [{ userId: viewerId }, { userId: otherId }] },
      },
    });
    return { chat, created: true };
  } catch (error) {
    // Both users opened the chat at the same moment: the unique key picked one; return it.
    if (isUniqueViolation(error)) return { chat: await prisma.chat.findUniqueOrThrow({ where: { directKey } }), created: false };
    throw error;
  }
}

async function createGroupChat({ prisma }: ChatServices, viewerId: string, memberIds: string[], input: CreateChatInput) {
  const title = parseInput(titleSchema, input.title ?? '', 'input.title');
  await assertUsersExist(prisma, viewerId, memberIds, 'input.memberIds');
  return prisma.chat.create({
    data: {
      kind: 'GROUP',
      title,
      isPublic: input.isPublic ?? false,
      encrypted: input.encrypted ?? false,
      createdById: viewerId,
      members: {
        create: [{ userId: viewerId, role: 'OWNER' }, ...memberIds.map((userId) => ({ userId, role: 'MEMBER' as const }))],
      },
    },
  });
}

/** Joins a public group. Private groups and direct chats answer NOT_FOUND, as to any stranger. */
export async function joinChat({ prisma, events }: ChatServices, viewerId: string, chatId: string): Promise<Chat> {
  const chat = await prisma.chat.findUnique({ where: { id: chatId } });
  if (!chat || chat.kind !== 'GROUP' || !chat.isPublic) throw notFound(CHAT_NOT_FOUND);
  await assertRoomFor(prisma, chatId, 1);
  const count = await prisma.$transaction(async (tx) => {
    const joined = await tx.chatMember.createMany({ data: [{ chatId, userId: viewerId }], skipDuplicates: true });
    if (joined.count > 0) await membersChanged(tx, chatId);
    return joined.count;
  });
  if (count > 0) await events.chat(chatId, 'MEMBER_JOINED', viewerId, { userId: viewerId, affected: [{ userId: viewerId, member: true }] });
  return chat;
}

/**
 * Leaves a group. When the last owner leaves, the oldest admin (else the oldest member) becomes
 * owner, so a group with members always has one.
 */
export async function leaveChat(services: ChatServices, viewerId: string, chatId: string): Promise<void> {
  const membership = await requireMembership(services.prisma, chatId, viewerId);
  if (membership.chat.kind === 'DIRECT') throw badUserInput('chatId', 'Direct chats cannot be left.');
  await leaveGroup(services, viewerId, chatId);
}

/** The member leaves the group as with leaveChat (ownership passes on); a member already gone is no error. */
export const leaveGroup = (services: ChatServices, userId: string, chatId: string) =>
  removeMemberKeepingOwner(services, chatId, userId, userId, 'MEMBER_LEFT');

export async function addChatMembers(
  { prisma, events }: ChatServices,
  viewerId: string,
  chatId: string,
  userIds: readonly (string | number)[],
): Promise<void> {
  await requireGroupRole(prisma, chatId, viewerId, ['OWNER', 'ADMIN'], 'add members');
  const ids = parseInput(idListSchema(ADD_MEMBERS_MAX), userIds.map(String), 'userIds');
  if (ids.length === 0) throw badUserInput('userIds', 'Name at least one user to add.');
  await assertUsersExist(prisma, viewerId, ids, 'userIds');
  await assertRoomFor(prisma, chatId, ids.length);
  const added = await prisma.$transaction(async (tx) => {
    const rows = await tx.chatMember.createManyAndReturn({ data: ids.map((userId) => ({ chatId, userId })), skipDuplicates: true, select: { userId: true } });
    if (rows.length > 0) await membersChanged(tx, chatId);
    return rows;
  });
  for (const { userId } of added) {
    await events.chat(chatId, 'MEMBER_ADDED', viewerId, { userId, affected: [{ userId, member: true }] });
  }
}

/** Owners remove anyone else; admins remove plain members. Leaving yourself is `leaveChat`. */
export async function removeChatMember(services: ChatServices, viewerId: string, chatId: string, userId: string): Promise<void> {
  const { prisma } = services;
  const membership = await requireGroupRole(prisma, chatId, viewerId, ['OWNER', 'ADMIN'], 'remove members');
  if (userId === viewerId) throw badUserInput('userId', 'Use leaveChat to leave a chat yourself.');
  const target = await prisma.chatMember.findUnique({ where: { chatId_userId: { chatId, userId } } });
  if (!target) throw notFound('Member');
  if (membership.role === 'ADMIN' && target.role !== 'MEMBER') throw forbidden('Admins can remove members only.');
  await removeMemberKeepingOwner(services, chatId, userId, viewerId, 'MEMBER_REMOVED');
}

/** Owners promote and demote; the last owner cannot demote themselves (they leave instead). */
export async function setChatMemberRole(
  { prisma, events }: ChatServices,
  viewerId: string,
  chatId: string,
  userId: string,
  role: ChatRole,
): Promise<void> {
  await requireGroupRole(prisma, chatId, viewerId, ['OWNER'], 'change roles');
  await prisma.$transaction(async (tx) => {
    await lockChat(tx, chatId);
    const target = await tx.chatMember.findUnique({ where: { chatId_userId: { chatId, userId } } });
    if (!target) throw notFound('Member');
    if (target.role === 'OWNER' && role !== 'OWNER') {
      const owners = await tx.chatMember.count({ where: { chatId, role: 'OWNER' } });
      if (owners === 1) throw badUserInput('role', 'A group needs an owner: make someone else owner first.');
    }
    await tx.chatMember.update({ where: { chatId_userId: { chatId, userId } }, data: { role } });
  });
  await events.chat(chatId, 'ROLE_CHANGED', viewerId, { userId });
}

export interface UpdateChatInput {
  title?: string | null;
  isPublic?: boolean | null;
}

export async function updateChat({ prisma, events }: ChatServices, viewerId: string, chatId: string, input: UpdateChatInput): Promise<Chat> {
  await requireGroupRole(prisma, chatId, viewerId, ['OWNER', 'ADMIN'], 'change the chat');
  const chat = await prisma.chat.update({
    where: { id: chatId },
    data: {
      ...(input.title != null ? { title: parseInput(titleSchema, input.title, 'input.title') } : {}),
      ...(input.isPublic != null ? { isPublic: input.isPublic } : {}),
    },
  });
  await events.chat(chatId, 'UPDATED', viewerId);
  return chat;
}

/** Membership with one of `roles` in a group; direct chats have no members to manage or settings. */
async function requireGroupRole(prisma: ChatServices['prisma'], chatId: string, userId: string, roles: ChatRole[], action: string) {
  const membership = await requireMembership(prisma, chatId, userId);
  if (membership.chat.kind === 'DIRECT') throw badUserInput('chatId', `This is a direct chat: nobody can ${action} in it.`);
  return requireRole(membership, roles, action);
}

type Tx = Prisma.TransactionClient;

/** Serialises membership changes of one chat, so two owners leaving at once still leave one. */
async function lockChat(tx: Tx, chatId: string) {
  await tx.$queryRaw`SELECT 1 FROM "Chat" WHERE "id" = ${chatId} FOR UPDATE`;
}

/**
 * Who is a member changed (in this transaction): raises the chat's membersVersion, which takes the
 * chat's row lock until commit, so every send after the change sees the new version and every send
 * before it the old one (src/realtime/chat-members.ts relies on that order).
 */
async function membersChanged(tx: Tx, chatId: string) {
  await tx.chat.update({ where: { id: chatId }, data: { membersVersion: { increment: 1 } }, select: { id: true } });
}

async function removeMemberKeepingOwner(
  { prisma, events }: ChatServices,
  chatId: string,
  userId: string,
  actorId: string,
  type: 'MEMBER_LEFT' | 'MEMBER_REMOVED',
) {
  const outcome = await prisma.$transaction(async (tx) => {
    await lockChat(tx, chatId);
    const removed = await tx.chatMember.deleteMany({ where: { chatId, userId } });
    if (removed.count === 0) return { removed: false, heirId: null };
    await membersChanged(tx, chatId);
    if ((await tx.chatMember.count({ where: { chatId, role: 'OWNER' } })) > 0) return { removed: true, heirId: null };
    const heir = await tx.chatMember.findFirst({
      where: { chatId },
      // ADMIN sorts before MEMBER in the enum; then the longest-standing member.
      orderBy: [{ role: 'asc' }, { joinedAt: 'asc' }, { userId: 'asc' }],
    });
    if (heir) await tx.chatMember.update({ where: { chatId_userId: { chatId, userId: heir.userId } }, data: { role: 'OWNER' } });
    return { removed: true, heirId: heir?.userId ?? null };
  });
  if (!outcome.removed) return;
  await events.chat(chatId, type, actorId, { userId, affected: [{ userId, member: false }] });
  if (outcome.heirId) await events.chat(chatId, 'ROLE_CHANGED', actorId, { userId: outcome.heirId });
}

/**
 * Every id is a user the viewer may add: someone who blocked the viewer is answered exactly as an
 * unknown id, so the block does not show. (A direct chat says FORBIDDEN for a block either way.)
 */
async function assertUsersExist(prisma: ChatServices['prisma'], viewerId: string, ids: string[], field: string, { hideBlockers = true } = {}) {
  if (ids.length === 0) return;
  const found = await prisma.user.findMany({ where: { id: { in: ids }, ...activeUsers, ...(hideBlockers ? notBlocking(viewerId) : {}) }, select: { id: true } });
  if (found.length !== ids.length) {
    const known = new Set(found.map((u) => u.id));
    throw badUserInput(field, `Unknown user id: ${ids.find((id) => !known.has(id))}.`);
  }
}

async function assertRoomFor(prisma: ChatServices['prisma'], chatId: string, extra: number) {
  const count = await prisma.chatMember.count({ where: { chatId } });
  if (count + extra > GROUP_MAX_MEMBERS) throw badUserInput('chatId', `A group has at most ${GROUP_MAX_MEMBERS} members.`);
}
