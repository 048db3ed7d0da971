// Deleting an account. At once, in one transaction: the profile is erased (email, password hash,
// name, bio, picture, status), every session ends (push subscriptions go with them), contacts and
// blocks go both ways, and the username is reserved for USERNAME_RESERVATION_MS. Then, erased in
// batches as deleteMessage erases one message: every message the user sent (rows stay, so chats keep
// their positions and read as from a deleted account), their uploads (rows and bytes), and their
// place in groups (left as with leaveChat, so ownership passes on). Direct chats stay, readable by
// the partner, who sees User.deleted and can no longer write there.
//
// The erasure is idempotent: the account clean-up (account-cleanup.ts) runs it once more an hour
// later, which finishes what a crash interrupted and what requests already in flight wrote.
import { checkPassword } from '../auth/accounts.ts';
import { deleteDevicesOfUser } from '../devices/devices.ts';
import type { Viewer } from '../auth/authenticate.ts';
import { announceSessionsEnded } from '../auth/sessions.ts';
import { leaveGroup } from '../chats/chats.ts';
import { forEachIdBatch } from '../db/keyset.ts';
import { badUserInput } from '../errors.ts';
import { deleteUploadsOf } from '../files/cleanup.ts';
import { eraseMessages } from '../messages/messages.ts';
import type { Services } from '../services.ts';
import { deleteExports } from './data-export.ts';

type DeletionServices = Pick<Services, 'prisma' | 'passwords' | 'loginLimits' | 'events' | 'sessions' | 'storage' | 'logger'>;

/** How long a deleted account's username stays reserved, so nobody takes over a name its contacts knew. */
export const USERNAME_RESERVATION_MS = 30 * 24 * 60 * 60_000;
/** What others see as a deleted account's display name (User.deleted tells clients to show their own words). */
export const DELETED_DISPLAY_NAME = 'Deleted account';
/** Messages per erasing transaction: short row locks, bounded memory. */
const MESSAGE_BATCH = 500;

/**
 * Deletes the viewer's account after checking the password the way login does (so login limits
 * count it). The caller's session ends with all the others.
 */
export async function deleteAccount(services: DeletionServices, viewer: Viewer, password: string, address: string): Promise<void> {
  if (!password) throw badUserInput('password', 'Enter your password.');
  const user = await checkPassword(services, () => services.prisma.user.findUnique({ where: { id: viewer.userId } }), password, { address });
  if (!user) throw badUserInput('password', 'The password is not correct.');
  // While the memberships still stand, so chat partners hear DEVICES_CHANGED.
  await deleteDevicesOfUser(services, user.id);
  const sessionIds = await closeAccount(services, user.id);
  await announceSessionsEnded(services, sessionIds);
  await announceDeletion(services, user.id);
  await eraseAccountData(services, user.id);
}

/**
 * Tells others' clients: presence followers get OFFLINE at once (the presence tracker records nothing
 * of the account later), and each direct-chat partner an UPDATED chat event naming the account, so
 * the chat shows it as deleted. Groups hear MEMBER_LEFT as the erasure leaves them.
 */
async function announceDeletion({ prisma, events }: DeletionServices, userId: string) {
  await events.presence({ userId, online: false, lastSeenAt: null });
  const direct = await prisma.chatMember.findMany({ where: { userId, chat: { kind: 'DIRECT' } }, select: { chatId: true } });
  for (const { chatId } of direct) await events.chat(chatId, 'UPDATED', userId, { userId });
}

/** The part that takes effect at once, in one transaction; returns the ids of the sessions it ended. */
async function closeAccount({ prisma }: DeletionServices, userId: string): Promise<string[]> {
  return prisma.$transaction(async (tx) => {
    const now = new Date();
    const closed = await tx.user.updateMany({
      where: { id: userId, deletedAt: null },
      data: {
        deletedAt: now,
        email: null,
        passwordHash: null,
        displayName: DELETED_DISPLAY_NAME,
        bio: null,
        avatarAttachmentId: null,
        status: 'OFFLINE',
        lastSeenAt: null,
        dataExportedAt: null,
      },
    });
    if (closed.count > 0) {
      await tx.accountDeletion.create({ data: { userId, deletedAt: now, usernameReleaseAt: new Date(now.getTime() + USERNAME_RESERVATION_MS) } });
    }
    const sessions = await tx.session.findMany({ where: { userId }, select: { id: true } });
    // Refresh-token rows, push subscriptions and devices with their keys and envelopes go with their
    // sessions (ON DELETE CASCADE): also a device uploaded since deleteDevicesOfUser ran.
    await tx.session.deleteMany({ where: { userId } });
    await tx.pushSubscription.deleteMany({ where: { userId } });
    await tx.contact.deleteMany({ where: { OR: [{ ownerId: userId }, { userId }] } });
    await tx.userBlock.deleteMany({ where: { OR: [{ blockerId: userId }, { blockedId: userId }] } });
    // Their drafts (unsent text) and reactions are theirs alone, not part of the chats' history.
    await tx.chatDraft.deleteMany({ where: { userId } });
    await tx.messageReaction.deleteMany({ where: { userId } });
    return sessions.map((session) => session.id);
  });
}

/**
 * Erases what a deleted account left in chats: their groups (left, ownership passed on), their
 * messages (content, attachments and history erased, client ids forgotten), their uploads and data exports.
 * Idempotent: running it again finds nothing more to do. Returns how many things it erased.
 */
export async function eraseAccountData(services: DeletionServices, userId: string): Promise<number> {
  const { prisma } = services;
  const groups = await prisma.chatMember.findMany({ where: { userId, chat: { kind: 'GROUP' } }, select: { chatId: true } });
  for (const { chatId } of groups) await leaveGroup(services, userId, chatId);
  const messages = await forEachIdBatch(
    (after, take) =>
      prisma.message.findMany({
        where: { senderId: userId, OR: [{ deletedAt: null }, { clientMessageId: { not: null } }], id: { gt: after } },
        select: { id: true },
        orderBy: { id: 'asc' },
        take,
      }),
    MESSAGE_BATCH,
    async (ids) => {
      const erased = await eraseMessages(services, ids);
      // The ids a client chose for its sends are the user's too; deleteMessage keeps them (retries stay idempotent).
      await prisma.message.updateMany({ where: { id: { in: ids } }, data: { clientMessageId: null } });
      return erased.length;
    },
  );
  const uploads = await deleteUploadsOf(services, userId);
  const exports = await deleteExports(services, { userId });
  return groups.length + messages + uploads + exports;
}
