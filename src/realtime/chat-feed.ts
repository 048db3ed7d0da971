// One ordered feed per chat and instance, shared by every local subscriber of that chat. Message
// events can reach an instance out of position order (two instances publish, or a send is still in
// flight when the next one publishes) or not at all (Redis pub/sub drops what is published while it
// reconnects; an instance can die between its commit and its publish). The feed holds an early
// event briefly, reads the positions it missed from the database, and hands every subscriber the
// same event objects in position order, so per-event work (membership, execution) stays shared.
//
// A feed never skips a position. A read that fails is tried again with backoff while later events
// wait; a gap still open `gapTimeoutMs` after the last progress ends the feed, and each subscriber
// with UNAVAILABLE (its client resubscribes from its last seq). After the bus reconnects, every feed
// compares its position with its chat's in the database, so an event lost in the outage arrives too.
//
// That bound is for a database out of reach, not a busy one: a read waiting for a pooled connection
// while the database answers others (10,000 subscriptions to one chat set up at once queue the
// feed's first read behind theirs) has the bound start over (retry.ts); else a storm on a large
// chat would end its feed and fail every subscriber waiting on it at once.
import { unavailable } from '../errors.ts';
import type { PrismaClient } from '../generated/prisma/client.ts';
import { databaseAnswers } from '../db/client.ts';
import type { InFlight } from '../in-flight.ts';
import type { Logger } from '../logger.ts';
import type { EventBus } from './bus.ts';
import { changesMembership, createChatMembers } from './chat-members.ts';
import { channels, type ChatTopicEvent } from './events.ts';
import { backoffMs, retrying } from './retry.ts';

type MessageEvent = Extract<ChatTopicEvent, { kind: 'message' }>;

/** One local subscriber of a chat's feed. */
export interface FeedSubscriber {
  /**
   * Called once, as the subscriber is attached and before any event reaches it: from then on it
   * gets every CREATED event after position `from`, each once and in order, unless `fail` ends it.
   */
  start?(from: number): void;
  event(event: ChatTopicEvent): void;
  /** The feed ended (a gap it could not fill in time, or a reconnect it could not check): nothing more comes. */
  fail(error: Error): void;
}

export interface ChatFeedsOptions {
  bus: EventBus;
  prisma: PrismaClient;
  logger: Logger;
  /** How long an event that skips positions waits for the missing ones before they are read from the database. Default 100 ms. */
  holdMs?: number;
  /** Most messages one read of missing positions returns (more are read in further rounds). Default 1000. */
  fillMax?: number;
  /** How long a gap may stay open without progress, reads retried meanwhile, before the feed ends (FEED_GAP_TIMEOUT_MS). Default 5000. */
  gapTimeoutMs?: number;
  /** Tracks database reads, so shutdown waits for them before closing the database. */
  inFlight?: InFlight;
  /** Statements the database has answered so far: a gap or start read waiting while it grows is queued, not out of reach (see the file comment). Default: `prisma`'s (db/client.ts databaseAnswers). */
  answers?: () => number;
}

/** A gap being filled: reads in turn, retried after failures, until nothing is missing. */
interface Gap {
  /** Ends the feed if the gap is still open then; restarted by each read that makes progress. */
  deadline: NodeJS.Timeout;
  failures: number;
  retry?: NodeJS.Timeout;
  /** A read of the gap is under way, and the database's answers when the deadline was last set. */
  reading: boolean;
  answersSeen?: number;
}

interface Feed {
  chatId: string;
  /** Attached subscribers: they receive events. */
  subscribers: Set<FeedSubscriber>;
  /** Subscribers waiting for the starting position, attached together once it is known. */
  pending: Set<FeedSubscriber>;
  /** Settles once the channel is live and the starting position known. */
  ready: Promise<void>;
  stopListening?: () => void;
  /** Position of the last CREATED event handed out (undefined until known). */
  lastSeq?: number;
  /** Highest position known to exist: from events, or from the database after a reconnect. */
  knownSeq: number;
  /** Message events waiting for earlier positions. */
  held: MessageEvent[];
  /** Events being handed out in chunks (a large chat), oldest first. */
  handing: Array<{ event: ChatTopicEvent; subscribers: FeedSubscriber[]; next: number }>;
  holdTimer?: NodeJS.Timeout;
  gap?: Gap;
  ended: boolean;
}

export type ChatFeeds = ReturnType<typeof createChatFeeds>;

const TYPE_ORDER = { CREATED: 0, EDITED: 1, REACTIONS_CHANGED: 1, READ_BY_CHANGED: 1, DELETED: 2 } as const;
/**
 * Subscribers handed events per turn of the event loop (~40 µs each, the work that follows
 * included): a chat of 10,000 yields between chunks, so requests (the sender's next one among
 * them) are answered meanwhile instead of after the whole hand-out.
 */
const HAND_OUT_CHUNK = 250;
/** Chats whose positions one query after a reconnect looks up. */
const RESYNC_BATCH = 1_000;

const delayed = () =>
  unavailable('Live events of this chat are delayed: resubscribe with sinceSeq set to the last seq you received.');

export function createChatFeeds(options: ChatFeedsOptions) {
  const { bus, prisma, logger, holdMs = 100, fillMax = 1_000, gapTimeoutMs = 5_000, inFlight, answers = databaseAnswers(prisma) } = options;
  const feeds = new Map<string, Feed>();
  const track = <T>(work: Promise<T>) => (inFlight ? inFlight.track(work) : work);
  const members = createChatMembers(prisma, track);

  const subscriberFailed = (error: unknown) => logger.error({ err: error }, 'chat feed subscriber failed');
  const safely = (call: () => void) => {
    try {
      call();
    } catch (error) {
      subscriberFailed(error);
    }
  };
  /** As safely(() => subscriber.event(event)), without a closure per subscriber and event. */
  const handTo = (subscriber: FeedSubscriber, event: ChatTopicEvent) => {
    try {
      subscriber.event(event);
    } catch (error) {
      subscriberFailed(error);
    }
  };

  /** Every subscriber attached now gets the event, in the order events came; see HAND_OUT_CHUNK. */
  const handOut = (feed: Feed, event: ChatTopicEvent) => {
    const subscribers = [...feed.subscribers];
    if (feed.handing.length === 0 && subscribers.length <= HAND_OUT_CHUNK) {
      for (const subscriber of subscribers) handTo(subscriber, event);
      return;
    }
    feed.handing.push({ event, subscribers, next: 0 });
    if (feed.handing.length === 1) handOutChunk(feed);
  };

  const handOutChunk = (feed: Feed) => {
    let budget = HAND_OUT_CHUNK;
    while (budget > 0 && feed.handing.length > 0) {
      const job = feed.handing[0]!;
      const end = Math.min(job.subscribers.length, job.next + budget);
      budget -= end - job.next;
      for (; job.next < end; job.next++) {
        const subscriber = job.subscribers[job.next]!;
        // Detached (or the feed ended) since the event came: nothing more for it.
        if (feed.subscribers.has(subscriber)) handTo(subscriber, job.event);
      }
      if (job.next >= job.subscribers.length) feed.handing.shift();
    }
    if (feed.handing.length > 0) setImmediate(() => handOutChunk(feed));
  };

  const closeGap = (feed: Feed) => {
    clearTimeout(feed.holdTimer);
    feed.holdTimer = undefined;
    if (!feed.gap) return;
    clearTimeout(feed.gap.deadline);
    clearTimeout(feed.gap.retry);
    feed.gap = undefined;
  };

  /** Ends the feed for good; with an error, every subscriber is told (and must resubscribe). */
  const end = (feed: Feed, error?: Error) => {
    if (feed.ended) return;
    feed.ended = true;
    if (feeds.get(feed.chatId) === feed) {
      feeds.delete(feed.chatId);
      members.forget(feed.chatId);
    }
    closeGap(feed);
    feed.held.length = 0;
    feed.handing.length = 0;
    feed.stopListening?.();
    const told = [...feed.subscribers, ...feed.pending];
    feed.subscribers.clear();
    feed.pending.clear();
    if (error) for (const subscriber of told) safely(() => subscriber.fail(error));
  };

  /** Hands out every held event whose turn has come; a missing position waits, then is read. */
  const release = (feed: Feed) => {
    if (feed.lastSeq === undefined || feed.ended) return;
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
    if (feed.knownSeq <= feed.lastSeq) return closeGap(feed);
    if (!feed.gap) feed.holdTimer ??= setTimeout(() => openGap(feed), holdMs);
  };

  const openGap = (feed: Feed) => {
    feed.holdTimer = undefined;
    if (feed.ended || feed.gap || feed.knownSeq <= feed.lastSeq!) return;
    const gap: Gap = { deadline: setTimeout(() => giveUp(feed, gap), gapTimeoutMs), failures: 0, reading: false, answersSeen: answers?.() };
    feed.gap = gap;
    void fill(feed, gap);
  };

  const giveUp = (feed: Feed, gap: Gap) => {
    // Its read still waits for a connection while the database answers others: busy, not out of reach.
    if (gap.reading && answers && answers() !== gap.answersSeen) {
      gap.answersSeen = answers();
      gap.deadline.refresh();
      return;
    }
    logger.warn({ chatId: feed.chatId, lastSeq: feed.lastSeq, knownSeq: feed.knownSeq }, 'chat feed could not fill a gap in time: its subscribers resubscribe');
    end(feed, delayed());
  };

  /** Reads the next missing positions once for all subscribers; see the file comment. */
  const fill = async (feed: Feed, gap: Gap) => {
    const from = feed.lastSeq!;
    let missing: Array<{ id: string; seq: number }>;
    gap.reading = true;
    try {
      missing = await track(
        prisma.message.findMany({
          where: { chatId: feed.chatId, seq: { gt: from, lte: Math.min(feed.knownSeq, from + fillMax) } },
          select: { id: true, seq: true },
          orderBy: { seq: 'asc' },
        }),
      );
    } catch (error) {
      gap.reading = false;
      if (feed.gap !== gap) return; // ended, or filled by live events meanwhile
      gap.failures += 1;
      if (gap.failures === 1) logger.warn({ err: error, chatId: feed.chatId }, 'chat feed could not read a gap: retrying');
      gap.retry = setTimeout(() => void fill(feed, gap), backoffMs(gap.failures));
      return;
    }
    gap.reading = false;
    if (feed.gap !== gap) return;
    const created = new Set(feed.held.filter((event) => event.type === 'CREATED').map((event) => event.seq));
    for (const message of missing) {
      if (!created.has(message.seq)) feed.held.push({ kind: 'message', type: 'CREATED', chatId: feed.chatId, messageId: message.id, seq: message.seq });
    }
    release(feed);
    if (feed.gap !== gap) return; // nothing is missing any more
    if (feed.lastSeq! > from) {
      // Progress (a long gap is read in rounds): the bound counts from here.
      gap.failures = 0;
      gap.answersSeen = answers?.();
      gap.deadline.refresh();
      void fill(feed, gap);
    } else {
      // Not in the database (yet): ask again, within the same bound.
      gap.failures += 1;
      gap.retry = setTimeout(() => void fill(feed, gap), backoffMs(gap.failures));
    }
  };

  const receive = (feed: Feed, event: ChatTopicEvent) => {
    if (feed.ended) return;
    if (changesMembership(event)) members.invalidate(feed.chatId);
    if (event.kind !== 'message') return handOut(feed, event);
    feed.knownSeq = Math.max(feed.knownSeq, event.seq);
    feed.held.push(event);
    release(feed);
  };

  const attach = (feed: Feed, subscriber: FeedSubscriber) => {
    feed.subscribers.add(subscriber);
    safely(() => subscriber.start?.(feed.lastSeq!));
  };

  const open = (chatId: string): Feed => {
    const feed: Feed = { chatId, subscribers: new Set(), pending: new Set(), ready: Promise.resolve(), knownSeq: 0, held: [], handing: [], ended: false };
    feeds.set(chatId, feed);
    feed.ready = (async () => {
      const stop = await bus.listen(channels.chat(chatId), (payload) => receive(feed, payload as ChatTopicEvent));
      if (feed.ended) return stop(); // everyone left while we connected
      feed.stopListening = stop;
      // Read once the channel is live: later messages arrive as events, earlier ones are history.
      const chat = await track(
        retrying(() => prisma.chat.findUnique({ where: { id: chatId }, select: { lastSeq: true } }), { timeoutMs: gapTimeoutMs, stopped: () => feed.ended, answers }),
      );
      if (feed.ended) return;
      feed.lastSeq = chat?.lastSeq ?? 0;
      feed.knownSeq = Math.max(feed.knownSeq, feed.lastSeq);
      for (const subscriber of feed.pending) attach(feed, subscriber);
      feed.pending.clear();
      release(feed);
    })();
    feed.ready.catch((error: unknown) => {
      if (!feed.ended) logger.warn({ err: error, chatId }, 'chat feed could not start');
      end(feed);
    });
    return feed;
  };

  /** Looks up every live feed's chat position, once listening is live again after a reconnect. */
  const resync = async () => {
    const live = [...feeds.values()];
    await Promise.allSettled(live.map((feed) => feed.ready));
    const positioned = live.filter((feed) => !feed.ended && feed.lastSeq !== undefined);
    for (let i = 0; i < positioned.length; i += RESYNC_BATCH) {
      const batch = positioned.slice(i, i + RESYNC_BATCH);
      try {
        const chats = await track(
          retrying(() => prisma.chat.findMany({ where: { id: { in: batch.map((feed) => feed.chatId) } }, select: { id: true, lastSeq: true } }), {
            timeoutMs: gapTimeoutMs,
            answers,
          }),
        );
        const positions = new Map(chats.map((chat) => [chat.id, chat.lastSeq]));
        for (const feed of batch) {
          feed.knownSeq = Math.max(feed.knownSeq, positions.get(feed.chatId) ?? 0);
          release(feed);
        }
      } catch (error) {
        // What these feeds missed cannot be known: their subscribers start over from their last seq.
        logger.warn({ err: error, feeds: batch.length }, 'chat feeds could not check their positions after a reconnect');
        for (const feed of batch) end(feed, delayed());
      }
    }
  };
  bus.onReconnect(() => void resync());

  return {
    /**
     * Attaches `subscriber` to the chat's feed (see FeedSubscriber); resolves once it is attached,
     * with the function that detaches it. Rejects with UNAVAILABLE when the feed cannot start.
     */
    async follow(chatId: string, subscriber: FeedSubscriber): Promise<() => void> {
      const feed = feeds.get(chatId) ?? open(chatId);
      if (feed.lastSeq !== undefined) attach(feed, subscriber);
      else {
        feed.pending.add(subscriber);
        try {
          await feed.ready;
        } catch {
          feed.pending.delete(subscriber);
          throw delayed();
        }
      }
      return () => {
        feed.subscribers.delete(subscriber);
        feed.pending.delete(subscriber);
        if (feed.subscribers.size === 0 && feed.pending.size === 0) end(feed);
      };
    },
    /** Whether `userId` is a member of the event's chat, for delivering the event (see chat-members.ts). */
    isMember: members.isMember,
    /** Position of the last message handed out for a chat, once its feed is live. */
    lastSeq: (chatId: string) => feeds.get(chatId)?.lastSeq,
    /** Checks every live feed against the database now, as after a reconnect. */
    resync,
  };
}
