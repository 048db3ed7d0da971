// The event streams behind the subscription fields. Each checks, when an event is delivered (not
// only when subscribing), that the viewer may still see it.
import { requireMembership } from '../chats/membership.ts';
import { badUserInput } from '../errors.ts';
import type { Services } from '../services.ts';
import { blockersAmong } from '../users/contacts.ts';
import { channels, type ChatTopicEvent, type MessageEventType, type PresenceTopicEvent, type UserTopicEvent } from './events.ts';
import { isRetryable, retrying } from './retry.ts';
import { openStream, type StreamControls } from './stream.ts';

type StreamServices = Pick<Services, 'prisma' | 'events' | 'config' | 'chatFeeds'>;

export type MessageEvent = Extract<ChatTopicEvent, { kind: 'message' }>;
export type ChatEvent = Extract<ChatTopicEvent, { kind: 'chat' }>;
export type TypingEvent = Extract<ChatTopicEvent, { kind: 'typing' }>;

/** Most messages a `sinceSeq` replay sends; further behind, the client pages through history first. */
export const GAP_FILL_MAX = 1_000;

/**
 * A stream's database reads, retried while the database is briefly out of reach (FEED_GAP_TIMEOUT_MS),
 * then failing with UNAVAILABLE; they stop once the subscriber has gone. These run per event and
 * subscriber, so the retry machinery (a timer, a race) starts only after a first failure.
 */
function readsOf({ config }: StreamServices, controls: Pick<StreamControls<unknown>, 'closed'>) {
  const options = { timeoutMs: config.realtime.feedGapTimeoutMs, stopped: () => controls.closed };
  return <T>(read: () => Promise<T>) => read().catch((error: unknown) => (isRetryable(error) ? retrying(read, options) : Promise.reject(error)));
}

/**
 * Emits `event` if the viewer may see it: at once when the chat's kept member list answers (most
 * deliveries), else once a read (retried as readsOf) does. Returns the read, for the stream's step.
 */
function emitIfMember<E extends ChatTopicEvent>(
  { chatFeeds }: StreamServices,
  read: ReturnType<typeof readsOf>,
  controls: StreamControls<E>,
  event: E,
  viewerId: string,
): void | Promise<void> {
  const member = chatFeeds.isMember(event, viewerId);
  if (member === true) return controls.emit(event);
  if (member === false) return;
  return read(() => Promise.resolve(chatFeeds.isMember(event, viewerId))).then((allowed) => {
    if (allowed) controls.emit(event);
  });
}

interface FollowOptions {
  /** Follow this chat only (the viewer must be a member); otherwise every chat the viewer is in, as it changes. */
  chatId?: string | null;
  /** An event on the channel of a followed chat. */
  onChatEvent(event: ChatTopicEvent): void;
  /** The viewer's own membership changed (always delivered: it is about them). */
  onMembership?(event: UserTopicEvent): void;
  /**
   * A chat's feed attached this stream: its CREATED events from now on are those after `from`.
   * Called before any of them arrives, so work queued here comes first.
   */
  onStart?(chatId: string, from: number): void;
  /** A followed chat's feed ended, or a chat joined later could not be followed: the stream cannot go on in order. */
  onFail(error: unknown): void;
}

/** Listens to the channels of the viewer's chats, following joins and leaves. Resolves when live. */
async function followChats({ prisma, events, chatFeeds }: StreamServices, viewerId: string, options: FollowOptions): Promise<() => void> {
  const { bus } = events;
  const listening = new Map<string, Promise<() => void>>();

  const follow = async (chatIds: string[]) => {
    const fresh = chatIds.filter((id) => !listening.has(id));
    for (const id of fresh) {
      const following = chatFeeds.follow(id, { start: (from) => options.onStart?.(id, from), event: options.onChatEvent, fail: options.onFail });
      following.catch(() => listening.get(id) === following && listening.delete(id));
      listening.set(id, following);
    }
    await Promise.all(fresh.map((id) => listening.get(id)));
  };
  const unfollow = (chatId: string) => {
    const unlisten = listening.get(chatId);
    listening.delete(chatId);
    void unlisten?.then(
      (stop) => stop(),
      () => {},
    );
  };
  let stopUserChannel: (() => void) | undefined;
  const stop = () => {
    stopUserChannel?.();
    for (const chatId of [...listening.keys()]) unfollow(chatId);
  };

  try {
    if (options.chatId) {
      await requireMembership(prisma, options.chatId, viewerId);
      await follow([options.chatId]);
    } else {
      stopUserChannel = await bus.listen(channels.user(viewerId), (payload) => {
        const event = payload as UserTopicEvent;
        if (event.member) follow([event.chatId]).catch(options.onFail);
        else unfollow(event.chatId);
        options.onMembership?.(event);
      });
      const memberships = await prisma.chatMember.findMany({ where: { userId: viewerId }, select: { chatId: true } });
      await follow(memberships.map((m) => m.chatId));
    }
  } catch (error) {
    stop(); // the feeds already followed
    throw error;
  }
  return stop;
}

export interface MessageStreamOptions {
  chatId?: string | null;
  /** With `chatId`: first replay every message after this position, then continue live. */
  sinceSeq?: number | null;
}

/**
 * CREATED, EDITED and DELETED events, in each chat's order (the chat feeds order them and fill
 * gaps once for all subscribers). With `sinceSeq`, the stream emits exactly the positions after it,
 * in order and once each: the messages up to where the chat's feed attached it are replayed from
 * the database first, and live events queue behind that replay (those at or below its last
 * position are dropped).
 */
export function messageEventStream(services: StreamServices, viewerId: string, options: MessageStreamOptions) {
  const { prisma } = services;
  return openStream<MessageEvent>(async (controls) => {
    const read = readsOf(services, controls);
    /** Highest position replayed per chat: live CREATED events up to it were already delivered. */
    const replayedTo = new Map<string, number>();

    /** Sends the messages in (since, from]: the feed's live events are those after `from`. */
    const replay = async (chatId: string, since: number, from: number) => {
      replayedTo.set(chatId, Math.max(since, from));
      if (from <= since) return;
      if (from - since > GAP_FILL_MAX) {
        throw badUserInput('sinceSeq', `More than ${GAP_FILL_MAX} messages came after sinceSeq: page through Chat.messages, then subscribe from a later seq.`);
      }
      const missed = await read(() =>
        prisma.message.findMany({ where: { chatId, seq: { gt: since, lte: from } }, select: { id: true, seq: true }, orderBy: { seq: 'asc' } }),
      );
      for (const m of missed) controls.emit({ kind: 'message', type: 'CREATED', chatId, messageId: m.id, seq: m.seq });
    };

    return followChats(services, viewerId, {
      chatId: options.chatId,
      onStart: (chatId, from) => {
        if (options.chatId && options.sinceSeq != null) controls.enqueue(() => replay(chatId, Math.max(0, options.sinceSeq!), from));
      },
      onChatEvent: (event) => {
        if (event.kind !== 'message') return;
        controls.enqueue(() => {
          if (event.type === 'CREATED' && event.seq <= (replayedTo.get(event.chatId) ?? 0)) return;
          return emitIfMember(services, read, controls, event, viewerId);
        });
      },
      onFail: controls.fail,
    });
  });
}

/** Member joined/left/added/removed, role changed, chat created/updated: for the viewer's chats. */
export function chatEventStream(services: StreamServices, viewerId: string) {
  const { prisma } = services;
  return openStream<ChatEvent>(async (controls) => {
    const read = readsOf(services, controls);
    return followChats(services, viewerId, {
      onChatEvent: (event) => {
        if (event.kind !== 'chat') return;
        // The viewer's own joins and removals come through their user channel instead (below).
        if (event.userId === viewerId && event.type !== 'ROLE_CHANGED') return;
        controls.enqueue(() => emitIfMember(services, read, controls, event, viewerId));
      },
      onMembership: (event) => controls.enqueue(async () => controls.emit(event.event)),
      onFail: controls.fail,
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
    const read = readsOf(services, controls);
    const expiry = new Map<string, NodeJS.Timeout>();
    const stopTyping = (userId: string) => {
      clearTimeout(expiry.get(userId));
      expiry.delete(userId);
      controls.emit({ kind: 'typing', chatId, userId, isTyping: false, expiresAt: Date.now() });
    };
    const stop = await followChats(services, viewerId, {
      chatId,
      onFail: controls.fail,
      onChatEvent: (event) => {
        if (event.kind !== 'typing' || event.userId === viewerId) return;
        controls.enqueue(async () => {
          if (!(await read(() => Promise.resolve(services.chatFeeds.isMember(event, viewerId)))) || controls.closed) return;
          const wasTyping = expiry.has(event.userId);
          if (!event.isTyping) {
            if (wasTyping) stopTyping(event.userId);
            return;
          }
          // Someone who blocked the viewer types unseen (checked when a start would be shown).
          if (!wasTyping && (await read(() => blockersAmong(prisma, viewerId, [event.userId]))).has(event.userId)) return;
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
    const read = readsOf(services, controls);
    const deliver = (event: PresenceTopicEvent) =>
      controls.enqueue(async () => {
        if (!(await read(() => blockersAmong(prisma, viewerId, [event.userId]))).has(event.userId)) controls.emit(event);
      });
    const stops = await Promise.all(
      userIds.map((userId) => events.bus.listen(channels.presence(userId), (payload) => deliver(payload as PresenceTopicEvent))),
    );
    return () => stops.forEach((stop) => stop());
  });
}

export type { MessageEventType };
