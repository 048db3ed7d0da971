// Who is a member of a chat, as its message events are delivered: one member list per chat and
// instance, read once and kept while the chat has a live feed here, instead of one read of the
// whole membership per event.
//
// Why a kept list can never let an event through to someone removed before it: every change of
// who is a member raises Chat.membersVersion under the chat's row lock (chats.ts membersChanged),
// and a send takes the same lock to take its position and reads the version there, so each CREATED
// event says which version its send saw (events.ts). A list is read with its version in one
// statement. For an event of version w, a list of version v >= w reflects every change made before
// that send (and some after it, as a fresh read would); a list older than the event is read again,
// and a read that started before the event's commit is repeated until it is recent enough. So the
// check at delivery is as strict as reading the database for every event. Membership events on the
// chat's feed drop the list too, in order with the chat's other events, so a later read is fresh.
// Events that carry no version (edits, deletes, positions a feed read from the database, calls)
// are checked against a read of their own, shared by every subscriber of the event.
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { ChatTopicEvent } from './events.ts';

type MessageEvent = Extract<ChatTopicEvent, { kind: 'message' }>;

interface MemberList {
  version: number;
  members: Set<string>;
}

export type ChatMembers = ReturnType<typeof createChatMembers>;

/** The membership types of chat events: they change who may see the chat's events. */
const MEMBERSHIP_CHANGES: ReadonlySet<string> = new Set(['CREATED', 'MEMBER_JOINED', 'MEMBER_LEFT', 'MEMBER_ADDED', 'MEMBER_REMOVED']);

export const changesMembership = (event: ChatTopicEvent) => event.kind === 'chat' && MEMBERSHIP_CHANGES.has(event.type);

export function createChatMembers(prisma: PrismaClient, track: <T>(work: Promise<T>) => Promise<T> = (work) => work) {
  /** The newest list per chat: being read, or read (then deliveries check against it without a promise). */
  const lists = new Map<string, Promise<MemberList> | MemberList>();
  /** Per event object: every subscriber the event reaches shares one answer (the members), pending or known. */
  const ofEvent = new WeakMap<object, Promise<Set<string>> | Set<string>>();

  const read = (chatId: string): Promise<MemberList> =>
    track(
      prisma.$queryRaw<Array<{ version: number | null; members: string[] | null }>>`
        SELECT c."membersVersion" AS version, array_remove(array_agg(m."userId"), NULL) AS members
        FROM "Chat" c LEFT JOIN "ChatMember" m ON m."chatId" = c."id"
        WHERE c."id" = ${chatId} GROUP BY c."id"`,
    ).then(([row]) => ({ version: row?.version ?? Number.MAX_SAFE_INTEGER, members: new Set(row?.members ?? []) }));

  /** A list of at least `version`: the kept one, or a read that started after the event committed. */
  const atLeast = async (chatId: string, version: number): Promise<Set<string>> => {
    for (;;) {
      let list = lists.get(chatId);
      if (!list) {
        const reading = read(chatId);
        lists.set(chatId, (list = reading));
        // A failed read is not kept: the subscribers' retries read again.
        reading.then(
          (done) => lists.get(chatId) === reading && lists.set(chatId, done),
          () => lists.get(chatId) === reading && lists.delete(chatId),
        );
      }
      const current = await list;
      if (current.version >= version) return current.members;
      // Still the newest (pending when we looked, or read since): too old for this event, read again.
      const newest = lists.get(chatId);
      if (newest === list || newest === current) lists.delete(chatId);
    }
  };

  const lookup = (event: { chatId: string } & Partial<Pick<MessageEvent, 'membersVersion'>>): Promise<Set<string>> => {
    if (event.membersVersion !== undefined) return atLeast(event.chatId, event.membersVersion);
    return prisma.chatMember.findMany({ where: { chatId: event.chatId }, select: { userId: true } }).then((rows) => new Set(rows.map((row) => row.userId)));
  };

  return {
    /**
     * Whether `userId` may get `event` (see the file comment): at once when the kept list (or this
     * event's answer) is already known, which is the case for all but the first deliveries of a chat.
     */
    isMember(event: { chatId: string; membersVersion?: number }, userId: string): boolean | Promise<boolean> {
      let members = ofEvent.get(event);
      if (!members) {
        const kept = event.membersVersion !== undefined ? lists.get(event.chatId) : undefined;
        if (kept && !(kept instanceof Promise) && kept.version >= event.membersVersion!) ofEvent.set(event, (members = kept.members));
        else {
          const pending = lookup(event);
          pending.then(
            (set) => ofEvent.get(event) === pending && ofEvent.set(event, set),
            () => ofEvent.get(event) === pending && ofEvent.delete(event),
          );
          ofEvent.set(event, (members = pending));
        }
      }
      return members instanceof Set ? members.has(userId) : members.then((set) => set.has(userId));
    },
    /** A membership event arrived on the chat's feed: the next delivery reads the list again. */
    invalidate(chatId: string) {
      lists.delete(chatId);
    },
    /** The chat has no feed here any more. */
    forget(chatId: string) {
      lists.delete(chatId);
    },
  };
}
