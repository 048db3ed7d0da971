// The event streams behind the subscription fields. Each checks, when an event is delivered (not
// only when subscribing), that the viewer may still see it.
import { requireMembership } from '../chats/membership.ts';
import type { Services } from '../services.ts';
import type { PrismaClient } from '../generated/prisma/client.ts';
import { blockersAmong } from '../users/contacts.ts';
import { channels, type ChatTopicEvent, type MessageEventType, type PresenceTopicEvent, type UserTopicEvent } from './events.ts';
import { openStream } from './stream.ts';

type StreamServices = Pick<Services, 'prisma' | 'events' | 'config' | 'chatFeeds'>;

export type MessageEvent = Extract<ChatTopicEvent, { kind: 'message' }>;
export type ChatEvent = Extract<ChatTopicEvent, { kind: 'chat' }>;
export type TypingEvent = Extract<ChatTopicEvent, { kind: 'typing' }>;

/** Missing messages a stream fills from the database before giving up (the client then resubscribes). */
export const GAP_FILL_MAX = 1_000;

// One member lookup per event and instance, shared by every subscriber the event reaches: the bus
// hands all local listeners the same payload object.
const membersOfEvent = new WeakMap<object, Promise<Set<string>>>();

export function isMemberNow(prisma: PrismaClient, event: { chatId: string }, userId: string): Promise<boolean> {
  let members = membersOfEvent.get(event);
  if (!members) {
    members = prisma.chatMember
      .findMany({ where: { chatId: event.chatId }, select: { userId: true } })
      .then((rows) => new Set(rows.map((row) => row.userId)));
    membersOfEvent.set(event, members);
  }
  return members.then((set) => set.has(userId));
}

interface FollowOptions {
  /** Follow this chat only (the viewer must be a member); otherwise every chat the viewer is in, as it changes. */
  chatId?: string | null;
  /** An event on the channel of a followed chat. */
  onChatEvent(event: ChatTopicEvent): void;
  /** The viewer's own membership changed (always delivered: it is about them). */
  onMembership?(event: UserTopicEvent): void;
  /** A chat started being followed (after its channel is live). */
  onFollow?(chatIds: string[]): void;
}

/** Listens to the channels of the viewer's chats, following joins and leaves. Resolves when live. */
async function followChats({ prisma, events, chatFeeds }: StreamServices, viewerId: string, options: FollowOptions): Promise<() => void> {
  const { bus } = events;
  const listening = new Map<string, Promise<() => void>>();
  let closed = false;

  const follow = async (chatIds: string[]) => {
    const fresh = chatIds.filter((id) => !listening.has(id));
    for (const id of fresh) listening.set(id, chatFeeds.follow(id, options.onChatEvent));
    await Promise.all(fresh.map((id) => listening.get(id)));
    if (!closed && fresh.length > 0) options.onFollow?.(fresh);
  };
  const unfollow = (chatId: string) => {
    const unlisten = listening.get(chatId);
    listening.delete(chatId);
    void unlisten?.then((stop) => stop());
  };

  let stopUserChannel: (() => void) | undefined;
  if (options.chatId) {
    await requireMembership(prisma, options.chatId, viewerId);
    await follow([options.chatId]);
  } else {
    stopUserChannel = await bus.listen(channels.user(viewerId), (payload) => {
      const event = payload as UserTopicEvent;
      if (event.member) void follow([event.chatId]);
      else unfollow(event.chatId);
      options.onMembership?.(event);
    });
    const memberships = await prisma.chatMember.findMany({ where: { userId: viewerId }, select: { chatId: true } });
    await follow(memberships.map((m) => m.chatId));
  }
  return () => {
    closed = true;
    stopUserChannel?.();
    for (const chatId of [...listening.keys()]) unfollow(chatId);
  };
}

export interface MessageStreamOptions {
  chatId?: string | null;
  /** With `chatId`: first replay every message after this position, then continue live. */
  sinceSeq?: number | null;
}

/**
 * CREATED, EDITED and DELETED events, in each chat's order (the chat feeds order them and fill
 * gaps once for all subscribers). With `sinceSeq`, the messages after it are replayed from the
 * database first; live events they overlap are dropped, so nothing repeats.
 */
export function messageEventStream(services: StreamServices, viewerId: string, options: MessageStreamOptions) {
  const { prisma } = services;
  return openStream<MessageEvent>(async (controls) => {
    /** Highest position replayed per chat: live CREATED events up to it were already delivered. */
    const replayedTo = new Map<string, number>();

    const replay = async (chatId: string, since: number) => {
      const missed = await prisma.message.findMany({
        where: { chatId, seq: { gt: since } },
        select: { id: true, seq: true },
        orderBy: { seq: 'asc' },
        take: GAP_FILL_MAX + 1,
      });
      if (missed.length > GAP_FILL_MAX) throw new Error('Too many missed messages: page through history and resubscribe.');
      for (const m of missed) controls.emit({ kind: 'message', type: 'CREATED', chatId, messageId: m.id, seq: m.seq });
      replayedTo.set(chatId, missed.at(-1)?.seq ?? since);
    };

    return followChats(services, viewerId, {
      chatId: options.chatId,
      onChatEvent: (event) => {
        if (event.kind !== 'message') return;
        controls.enqueue(async () => {
          if (event.type === 'CREATED' && event.seq <= (replayedTo.get(event.chatId) ?? 0)) return;
          if (await isMemberNow(prisma, event, viewerId)) controls.emit(event);
        });
      },
      onFollow: (chatIds) => {
        if (options.chatId && options.sinceSeq != null) controls.enqueue(() => replay(chatIds[0]!, Math.max(0, options.sinceSeq!)));
      },
    });
  });
}

/** Member joined/left/added/removed, role changed, chat created/updated: for the viewer's chats. */
export function chatEventStream(services: StreamServices, viewerId: string) {
  const { prisma } = services;
  return openStream<ChatEvent>(async (controls) => {
    return followChats(services, viewerId, {
      onChatEvent: (event) => {
        if (event.kind !== 'chat') return;
        // The viewer's own joins and removals come through their user channel instead (below).
        if (event.userId === viewerId && event.type !== 'ROLE_CHANGED') return;
        controls.enqueue(async () => {
          if (await isMemberNow(prisma, event, viewerId)) controls.emit(event);
        });
      },
      onMembership: (event) => controls.enqueue(async () => controls.emit(event.event)),
    });
  });
}

/**
 * Who starts and stops typing in a chat. A signal that is not refreshed expires here, on the
 * subscriber's side, so it expires even if the typist's instance died.
 */
export function typingStream(services: StreamServices, viewerId: string, chatId: string) {
  const { prisma } = services;
  const ttlMs = services.config.realtime.typingTtlMs;
  return openStream<TypingEvent>(async (controls) => {
    const expiry = new Map<string, NodeJS.Timeout>();
    const stopTyping = (userId: string) => {
      clearTimeout(expiry.get(userId));
      expiry.delete(userId);
      controls.emit({ kind: 'typing', chatId, userId, isTyping: false, expiresAt: Date.now() });
    };
    const stop = await followChats(services, viewerId, {
      chatId,
      onChatEvent: (event) => {
        if (event.kind !== 'typing' || event.userId === viewerId) return;
        controls.enqueue(async () => {
          if (!(await isMemberNow(prisma, event, viewerId)) || controls.closed) return;
          const wasTyping = expiry.has(event.userId);
          if (!event.isTyping) {
            if (wasTyping) stopTyping(event.userId);
            return;
          }
          // Someone who blocked the viewer types unseen (checked when a start would be shown).
          if (!wasTyping && (await blockersAmong(prisma, viewerId, [event.userId])).has(event.userId)) return;
          clearTimeout(expiry.get(event.userId));
          // Trust the typist's expiry only up to our own TTL (clocks differ; a client cannot pin "typing").
          const remaining = Math.min(Math.max(event.expiresAt - Date.now(), 0), ttlMs);
          expiry.set(event.userId, setTimeout(() => stopTyping(event.userId), remaining));
          if (!wasTyping) controls.emit(event);
        });
      },
    });
    return () => {
      stop();
      for (const timer of expiry.values()) clearTimeout(timer);
    };
  });
}

/** Presence changes of the given users; never of someone who blocked the viewer (checked per event). */
export function presenceStream(services: StreamServices, viewerId: string, userIds: string[]) {
  const { events, prisma } = services;
  return openStream<PresenceTopicEvent>(async (controls) => {
    const deliver = (event: PresenceTopicEvent) =>
      controls.enqueue(async () => {
        if (!(await blockersAmong(prisma, viewerId, [event.userId])).has(event.userId)) controls.emit(event);
      });
    const stops = await Promise.all(
      userIds.map((userId) => events.bus.listen(channels.presence(userId), (payload) => deliver(payload as PresenceTopicEvent))),
    );
    return () => stops.forEach((stop) => stop());
  });
}

export type { MessageEventType };
