// What others see of a user's presence, and whose presence a user may follow.
import { badUserInput } from '../errors.ts';
import type { PrismaClient, UserStatus } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { blockersAmong } from './contacts.ts';

export const PRESENCE_USER_IDS_MAX = 200;

/**
 * The status others see: OFFLINE without a live connection; with one, the status the user chose
 * (ONLINE, BUSY or AWAY; choosing OFFLINE means appearing offline).
 */
export function effectiveStatus(chosen: UserStatus, online: boolean): UserStatus {
  return online ? chosen : 'OFFLINE';
}

/**
 * Users whose presence `viewerId` may follow: of `userIds`, those who are the viewer's contacts or
 * share a chat with them (and the viewer); without `userIds`, the viewer's contacts and
 * direct-chat partners. Never someone who blocked the viewer (checked again at each event).
 */
export async function presenceAudience(prisma: PrismaClient, viewerId: string, userIds: string[] | null): Promise<string[]> {
  let candidates: string[];
  if (userIds === null) {
    const [partners, contacts] = await Promise.all([
      prisma.chatMember.findMany({
        where: { userId: { not: viewerId }, chat: { kind: 'DIRECT', members: { some: { userId: viewerId } } } },
        select: { userId: true },
      }),
      prisma.contact.findMany({ where: { ownerId: viewerId }, select: { userId: true } }),
    ]);
    candidates = [...new Set([...partners, ...contacts].map((p) => p.userId))];
  } else {
    const wanted = [...new Set(userIds)];
    if (wanted.length > PRESENCE_USER_IDS_MAX) throw badUserInput('userIds', `At most ${PRESENCE_USER_IDS_MAX} users.`);
    const [shared, contacts] = await Promise.all([
      prisma.chatMember.findMany({
        where: { userId: { in: wanted }, chat: { members: { some: { userId: viewerId } } } },
        select: { userId: true },
        distinct: ['userId'],
      }),
      prisma.contact.findMany({ where: { ownerId: viewerId, userId: { in: wanted } }, select: { userId: true } }),
    ]);
    const allowed = new Set([...shared, ...contacts].map((s) => s.userId).concat(viewerId));
    candidates = wanted.filter((id) => allowed.has(id));
  }
  const blockers = await blockersAmong(prisma, viewerId, candidates);
  return candidates.filter((id) => !blockers.has(id));
}

export interface ConnectionChange {
  userId: string;
  online: boolean;
  lastSeenAt: Date | null;
}

/**
 * Publishes what the presence tracker reports, except for users whose chosen status is OFFLINE:
 * "appear offline" means nobody learns when they connect or disconnect (their lastSeenAt stays
 * where it was too: last-seen.ts). Reports that come together (a tick, a shutdown) share one
 * status query. If the query fails, nothing is published: when unsure, reveal nothing.
 */
export function createPresencePublisher(prisma: PrismaClient, publish: (change: ConnectionChange) => Promise<void>, logger: Logger) {
  let pending: ConnectionChange[] = [];
  /** The flush in progress, which shutdown waits for before closing the bus and the database. */
  let flushing: Promise<void> = Promise.resolve();
  const flush = async () => {
    const changes = pending;
    pending = [];
    try {
      const hidden = await prisma.user.findMany({
        where: { id: { in: [...new Set(changes.map((change) => change.userId))] }, status: 'OFFLINE' },
        select: { id: true },
      });
      const appearingOffline = new Set(hidden.map((user) => user.id));
      await Promise.all(changes.filter((change) => !appearingOffline.has(change.userId)).map(publish));
    } catch (error) {
      logger.warn({ err: error, users: changes.length }, 'presence changes not published');
    }
  };
  return {
    report(change: ConnectionChange) {
      pending.push(change);
      if (pending.length > 1) return;
      const previous = flushing;
      flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => previous).then(flush);
    },
    /** Resolves once every change reported so far is published (or dropped). */
    drained: () => flushing,
  };
}
