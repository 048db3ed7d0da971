// One ordered feed per chat and instance, shared by every local subscriber of that chat. Message
// events can reach an instance out of position order (two instances publish, or a send is still in
// flight when the next one publishes) or not at all (Redis pub/sub drops what arrives during a
// reconnect). The feed holds an early event briefly, fills a real gap from the database once, and
// hands every subscriber the same event objects in position order, so per-event work (membership,
// execution) stays shared.
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { InFlight } from '../in-flight.ts';
import type { Logger } from '../logger.ts';
import type { EventBus } from './bus.ts';
import { channels, type ChatTopicEvent } from './events.ts';

type MessageEvent = Extract<ChatTopicEvent, { kind: 'message' }>;
export type FeedListener = (event: ChatTopicEvent) => void;

export interface ChatFeedsOptions {
  bus: EventBus;
  prisma: PrismaClient;
  logger: Logger;
  /** How long an event that skips positions waits for the missing ones before they are read from the database. Default 100 ms. */
  holdMs?: number;
  /** Most messages one gap fill reads. Default 1000. */
  fillMax?: number;
  /** Tracks gap fills, so shutdown waits for them before closing the database. */
  inFlight?: InFlight;
}

interface Feed {
  listeners: Set<FeedListener>;
  /** Settles once the channel is live and the starting position known. */
  ready: Promise<void>;
  stop?: () => void;
  /** Position of the last CREATED event handed out (undefined until known). */
  lastSeq?: number;
  /** Message events waiting for earlier positions. */
  held: MessageEvent[];
  timer?: NodeJS.Timeout;
  filling: boolean;
}

export type ChatFeeds = ReturnType<typeof createChatFeeds>;

const TYPE_ORDER = { CREATED: 0, EDITED: 1, DELETED: 2 } as const;

export function createChatFeeds({ bus, prisma, logger, holdMs = 100, fillMax = 1_000, inFlight }: ChatFeedsOptions) {
  const feeds = new Map<string, Feed>();

  const handOut = (feed: Feed, event: ChatTopicEvent) => {
    for (const listener of [...feed.listeners]) {
      try {
        listener(event);
      } catch (error) {
        logger.error({ err: error }, 'chat feed listener failed');
      }
    }
  };

  /** Hands out every held event whose turn has come; waits (then fills) for the rest. */
  const release = (chatId: string, feed: Feed) => {
    if (feed.lastSeq === undefined || feed.filling) return;
    // Stable: several edits of one message keep their order.
    feed.held.sort((a, b) => a.seq - b.seq || TYPE_ORDER[a.type] - TYPE_ORDER[b.type]);
    while (feed.held.length > 0) {
      const event = feed.held[0]!;
      if (event.type === 'CREATED') {
        if (event.seq > feed.lastSeq + 1) break; // a gap
        feed.held.shift();
        if (event.seq <= feed.lastSeq) continue; // a duplicate
        feed.lastSeq = event.seq;
      } else {
        if (event.seq > feed.lastSeq) break; // about a message whose CREATED has not come yet
        feed.held.shift();
      }
      handOut(feed, event);
    }
    if (feed.held.length === 0) {
      clearTimeout(feed.timer);
      feed.timer = undefined;
    } else {
      feed.timer ??= setTimeout(() => {
        const filling = fill(chatId, feed);
        void inFlight?.track(filling);
      }, holdMs);
    }
  };

  /** Reads the missing messages once for all subscribers; a position that never comes is skipped. */
  const fill = async (chatId: string, feed: Feed) => {
    feed.timer = undefined;
    if (feed.held.length === 0 || feed.lastSeq === undefined) return;
    feed.filling = true;
    const upTo = Math.max(...feed.held.map((event) => event.seq));
    try {
      const missing = await prisma.message.findMany({
        where: { chatId, seq: { gt: feed.lastSeq, lte: upTo } },
        select: { id: true, seq: true },
        orderBy: { seq: 'asc' },
        take: fillMax,
      });
      const created = new Set(feed.held.filter((e) => e.type === 'CREATED').map((e) => e.seq));
      for (const message of missing) {
        if (!created.has(message.seq)) feed.held.push({ kind: 'message', type: 'CREATED', chatId, messageId: message.id, seq: message.seq });
      }
    } catch (error) {
      logger.warn({ err: error, chatId }, 'chat feed could not fill a gap');
    } finally {
      feed.filling = false;
    }
    // Everyone left while we read: a stopped feed must not set a new timer.
    if (feeds.get(chatId) !== feed) return;
    // Whatever is still missing is not coming: continue from the first position we have.
    const first = Math.min(...feed.held.map((event) => event.seq));
    if (first > feed.lastSeq + 1) feed.lastSeq = first - 1;
    release(chatId, feed);
  };

  const open = (chatId: string): Feed => {
    const feed: Feed = { listeners: new Set(), ready: Promise.resolve(), held: [], filling: false };
    feeds.set(chatId, feed);
    feed.ready = (async () => {
      feed.stop = await bus.listen(channels.chat(chatId), (payload) => {
        const event = payload as ChatTopicEvent;
        if (event.kind !== 'message') return handOut(feed, event);
        feed.held.push(event);
        release(chatId, feed);
      });
      if (feeds.get(chatId) !== feed) return feed.stop(); // everyone left while we connected
      // Read once the channel is live: later messages arrive as events, earlier ones are history.
      const chat = await prisma.chat.findUnique({ where: { id: chatId }, select: { lastSeq: true } });
      feed.lastSeq = chat?.lastSeq ?? 0;
      release(chatId, feed);
    })();
    feed.ready.catch(() => {
      if (feeds.get(chatId) === feed) feeds.delete(chatId);
    });
    return feed;
  };

  return {
    /** Calls `listener` with the chat's events in order; resolves once live. Returns the unsubscribe. */
    async follow(chatId: string, listener: FeedListener): Promise<() => void> {
      const feed = feeds.get(chatId) ?? open(chatId);
      feed.listeners.add(listener);
      try {
        await feed.ready;
      } catch (error) {
        feed.listeners.delete(listener);
        throw error;
      }
      return () => {
        feed.listeners.delete(listener);
        if (feed.listeners.size > 0 || feeds.get(chatId) !== feed) return;
        feeds.delete(chatId);
        clearTimeout(feed.timer);
        feed.stop?.();
      };
    },
    /** Position of the last message handed out for a chat, once its feed is live. */
    lastSeq: (chatId: string) => feeds.get(chatId)?.lastSeq,
  };
}
