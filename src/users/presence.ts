// What others see of a user's presence, and whose presence a user may follow.
import { badUserInput } from '../errors.ts';
import type { PrismaClient, UserStatus } from '../generated/prisma/client.ts';

export const PRESENCE_USER_IDS_MAX = 200;

/**
 * The status others see: OFFLINE without a live connection; with one, the status the user chose
 * (ONLINE, BUSY or AWAY; choosing OFFLINE means appearing offline).
 */
export function effectiveStatus(chosen: UserStatus, online: boolean): UserStatus {
  return online ? chosen : 'OFFLINE';
}

/**
 * Users whose presence `viewerId` may follow: of `userIds`, those who share a chat with the viewer
 * (and the viewer); without `userIds`, the viewer's direct-chat partners.
 */
export async function presenceAudience(prisma: PrismaClient, viewerId: string, userIds: string[] | null): Promise<string[]> {
  if (userIds === null) {
    const partners = await prisma.chatMember.findMany({
      where: { userId: { not: viewerId }, chat: { kind: 'DIRECT', members: { some: { userId: viewerId } } } },
      select: { userId: true },
    });
    return partners.map((p) => p.userId);
  }
  const wanted = [...new Set(userIds)];
  if (wanted.length > PRESENCE_USER_IDS_MAX) throw badUserInput('userIds', `At most ${PRESENCE_USER_IDS_MAX} users.`);
  const shared = await prisma.chatMember.findMany({
    where: { userId: { in: wanted }, chat: { members: { some: { userId: viewerId } } } },
    select: { userId: true },
    distinct: ['userId'],
  });
  const allowed = new Set(shared.map((s) => s.userId).concat(viewerId));
  return wanted.filter((id) => allowed.has(id));
}
