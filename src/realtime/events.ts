// What travels on the event bus. Payloads are small, JSON-safe and immutable once published:
// subscribers load what they show from the database, after checking they may see it.
import type { Logger } from '../logger.ts';
import type { EventBus } from './bus.ts';

/**
 * REACTIONS_CHANGED: someone added or removed a reaction (src/messages/reactions.ts).
 * READ_BY_CHANGED: a member (`readerId`) read up to this message (src/chats/read-state.ts).
 */
export type MessageEventType = 'CREATED' | 'EDITED' | 'DELETED' | 'REACTIONS_CHANGED' | 'READ_BY_CHANGED';

export type ChatEventType =
  | 'CREATED'
  | 'UPDATED'
  | 'MEMBER_JOINED'
  | 'MEMBER_LEFT'
  | 'MEMBER_ADDED'
  | 'MEMBER_REMOVED'
  | 'ROLE_CHANGED'
  | 'MESSAGE_PINNED'
  | 'MESSAGE_UNPINNED';

/** What a message event may carry beyond the message's id and position. */
export interface MessageEventExtra {
  membersVersion?: number;
  readerId?: string;
}

/** Everything that happens inside one chat; delivered to its members only. */
export type ChatTopicEvent =
  | {
      kind: 'message';
      type: MessageEventType;
      chatId: string;
      messageId: string;
      seq: number;
      /** CREATED by a send: the chat's membersVersion that send saw (see chat-members.ts); absent otherwise. */
      membersVersion?: number;
      /** READ_BY_CHANGED: who moved their read position. */
      readerId?: string;
      /** The message's thread root (null: not a thread reply), when the publisher had the row; absent otherwise. */
      threadRootId?: string | null;
    }
  | { kind: 'chat'; type: ChatEventType; chatId: string; userId: string | null; actorId: string; messageId?: string }
  | { kind: 'typing'; chatId: string; userId: string; isTyping: boolean; expiresAt: number };

/** Events about one user's own memberships: lets their streams follow chats they join or leave. */
export type UserTopicEvent = { kind: 'membership'; chatId: string; member: boolean; event: ChatTopicEvent & { kind: 'chat' } };

export interface PresenceTopicEvent {
  userId: string;
  online: boolean;
  /** ISO time, set when the user went offline. */
  lastSeenAt: string | null;
}

export interface SessionsTopicEvent {
  /** Sessions that ended (logout, refresh-token reuse): their sockets close. */
  sessionIds: string[];
}

/**
 * What a user's devices hear about end-to-end encryption keys (channels.deviceKeys of that user):
 * someone they share a chat with (or they themselves) gained or lost a device; or one of their
 * devices is running out of one-time pre-keys.
 */
export type DeviceKeyTopicEvent =
  | { kind: 'DEVICES_CHANGED'; userId: string }
  | { kind: 'ONE_TIME_PRE_KEYS_LOW'; userId: string; deviceId: string; remaining: number };

/** To all of one user's connections: their draft in a chat was saved or cleared (on any device). */
export interface DraftTopicEvent {
  chatId: string;
}

/** To all of one user's connections: they read a chat up to `lastReadSeq` (on any device). */
export interface ReadStateTopicEvent {
  chatId: string;
  lastReadSeq: number;
}

export const channels = {
  chat: (chatId: string) => `chat:${chatId}`,
  user: (userId: string) => `user:${userId}`,
  presence: (userId: string) => `presence:${userId}`,
  deviceKeys: (userId: string) => `device-keys:${userId}`,
  readState: (userId: string) => `read-state:${userId}`,
  drafts: (userId: string) => `drafts:${userId}`,
  sessions: 'sessions',
};

export type Events = ReturnType<typeof createEvents>;

/**
 * Typed publishing on the bus. Publishing happens after the change is committed and never fails
 * the mutation: a lost event is logged, and message streams fill gaps from the database.
 */
export function createEvents(bus: EventBus, logger: Logger) {
  // The in-process bus calls every subscriber's handler inside publish(): for a message, that hand-out
  // (10,000 subscribers of a large group) would run inside the sender's request. It runs after the
  // request's turn instead (setImmediate keeps the order of sends), as it does after Redis.
  const afterThisTurn = async (publish: () => Promise<void>) => {
    if (bus.distributed) return publish();
    setImmediate(() => void publish().catch((error: unknown) => logger.warn({ err: error }, 'could not publish an event')));
  };
  const safely =
    <A extends unknown[]>(publish: (...args: A) => Promise<unknown>) =>
    async (...args: A): Promise<void> => {
      try {
        await publish(...args);
      } catch (error) {
        logger.warn({ err: error }, 'could not publish an event');
      }
    };
  return {
    bus,
    message: safely((chatId: string, type: MessageEventType, message: { id: string; seq: number; threadRootId?: string | null }, extra: MessageEventExtra = {}) =>
      afterThisTurn(() =>
        bus.publish(channels.chat(chatId), {
          kind: 'message',
          type,
          chatId,
          messageId: message.id,
          seq: message.seq,
          ...(extra.membersVersion === undefined ? {} : { membersVersion: extra.membersVersion }),
          ...(extra.readerId ? { readerId: extra.readerId } : {}),
          ...(message.threadRootId === undefined ? {} : { threadRootId: message.threadRootId }),
        } satisfies ChatTopicEvent),
      ),
    ),

    readState: safely((userId: string, event: ReadStateTopicEvent) => bus.publish(channels.readState(userId), event)),

    draft: safely((userId: string, event: DraftTopicEvent) => bus.publish(channels.drafts(userId), event)),

    /**
     * A change to a chat. Members see it on the chat's channel; `affected` users (added, removed,
     * joined, left, or everyone of a new chat) also get it on their own channel, which is how their
     * streams start or stop following the chat.
     */
    chat: safely(async (
      chatId: string,
      type: ChatEventType,
      actorId: string,
      subject: { userId?: string; messageId?: string; affected?: { userId: string; member: boolean }[] } = {},
    ) => {
      const event = {
        kind: 'chat',
        type,
        chatId,
        userId: subject.userId ?? null,
        actorId,
        ...(subject.messageId ? { messageId: subject.messageId } : {}),
      } satisfies ChatTopicEvent;
      await Promise.all([
        bus.publish(channels.chat(chatId), event),
        ...(subject.affected ?? []).map(({ userId, member }) =>
          bus.publish(channels.user(userId), { kind: 'membership', chatId, member, event } satisfies UserTopicEvent),
        ),
      ]);
    }),

    typing: safely((chatId: string, userId: string, isTyping: boolean, expiresAt: number) =>
      bus.publish(channels.chat(chatId), { kind: 'typing', chatId, userId, isTyping, expiresAt } satisfies ChatTopicEvent),
    ),

    presence: safely((event: PresenceTopicEvent) => bus.publish(channels.presence(event.userId), event)),

    /** `userId`'s device list changed: told to each of `audience` (who share a chat with them). */
    devicesChanged: safely(async (userId: string, audience: readonly string[]) => {
      const event = { kind: 'DEVICES_CHANGED', userId } satisfies DeviceKeyTopicEvent;
      await Promise.all(audience.map((recipient) => bus.publish(channels.deviceKeys(recipient), event)));
    }),

    oneTimePreKeysLow: safely((userId: string, deviceId: string, remaining: number) =>
      bus.publish(channels.deviceKeys(userId), { kind: 'ONE_TIME_PRE_KEYS_LOW', userId, deviceId, remaining } satisfies DeviceKeyTopicEvent),
    ),

    sessionsEnded: safely((sessionIds: string[]) => bus.publish(channels.sessions, { sessionIds } satisfies SessionsTopicEvent)),
  };
}
