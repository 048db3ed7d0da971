// The per-chat feed orders message events, fills gaps once, and shares event objects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { channels, type ChatTopicEvent } from '../src/realtime/events.ts';
import { createChat, feedsOnOwnBus, registerUser, sendText, startTestApp } from './support/helpers.ts';

let app: App;
beforeAll(async () => {
  app = await startTestApp({ PUSH_ENABLED: 'false' });
});
afterAll(async () => {
  await app?.stop();
});

const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('chat feeds', () => {
  it('hand out out-of-order events in position order, filling a gap from the database once', async () => {
    const { prisma } = app.services;
    const { bus, feeds } = feedsOnOwnBus(app, { holdMs: 50 });
    const user = await registerUser(app);
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'Feed', memberIds: [] });
    const [first, second, third] = [await sendText(app, user, chatId, 'a'), await sendText(app, user, chatId, 'b'), await sendText(app, user, chatId, 'c')];

    // The feed starts at the chat's current position (3): pretend the three are not sent yet.
    await prisma.chat.update({ where: { id: chatId }, data: { lastSeq: 0 } });
    const seenByA: ChatTopicEvent[] = [];
    const seenByB: ChatTopicEvent[] = [];
    const fail = (error: Error) => expect.fail(error.message);
    const stopA = await feeds.follow(chatId, { event: (event) => seenByA.push(event), fail });
    const stopB = await feeds.follow(chatId, { event: (event) => seenByB.push(event), fail });

    const created = (message: { id: string; seq: number }) => ({ kind: 'message', type: 'CREATED', chatId, messageId: message.id, seq: message.seq });
    await bus.publish(channels.chat(chatId), created(third));
    await bus.publish(channels.chat(chatId), { kind: 'message', type: 'EDITED', chatId, messageId: third.id, seq: third.seq });
    expect(seenByA).toEqual([]); // 3 waits for 1 and 2
    await bus.publish(channels.chat(chatId), created(first));
    expect(seenByA.map((e) => (e as { seq: number }).seq)).toEqual([1]);
    await bus.publish(channels.chat(chatId), created(first)); // a duplicate
    await idle(200); // 2 never arrives: read once from the database

    expect(seenByA.map((e) => [(e as { type: string }).type, (e as { seq: number }).seq])).toEqual([
      ['CREATED', 1],
      ['CREATED', 2],
      ['CREATED', 3],
      ['EDITED', 3],
    ]);
    expect((seenByA[1] as { messageId: string }).messageId).toBe(second.id);
    // Both subscribers got the very same objects (so per-event work is shared).
    expect(seenByB).toHaveLength(4);
    seenByA.forEach((event, index) => expect(seenByB[index]).toBe(event));

    // Other events pass straight through.
    await bus.publish(channels.chat(chatId), { kind: 'typing', chatId, userId: user.id, isTyping: true, expiresAt: Date.now() });
    expect(seenByA.at(-1)).toMatchObject({ kind: 'typing' });
    stopA();
    stopB();
    await bus.close();
  });

  it('tell each subscriber where its live events begin: the last position handed out, also while a gap waits', async () => {
    // A long hold: the gap below stays open until the missing event arrives.
    const { bus, feeds } = feedsOnOwnBus(app, { holdMs: 10_000 });
    const user = await registerUser(app);
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'Starts', memberIds: [] });
    const starts: number[] = [];
    const subscriber = (seen: number[]) => ({
      start: (from: number) => starts.push(from),
      event: (event: ChatTopicEvent) => seen.push((event as { seq: number }).seq),
      fail: (error: Error) => expect.fail(error.message),
    });
    await sendText(app, user, chatId, 'history');
    const early: number[] = [];
    const late: number[] = [];
    const stopEarly = await feeds.follow(chatId, subscriber(early));
    const sent = [await sendText(app, user, chatId, 'a'), await sendText(app, user, chatId, 'b'), await sendText(app, user, chatId, 'c')];
    const created = (message: { id: string; seq: number }) => ({ kind: 'message', type: 'CREATED', chatId, messageId: message.id, seq: message.seq });

    await bus.publish(channels.chat(chatId), created(sent[0]!));
    await bus.publish(channels.chat(chatId), created(sent[2]!)); // 4 waits for 3
    const stopLate = await feeds.follow(chatId, subscriber(late));
    await bus.publish(channels.chat(chatId), created(sent[1]!));

    expect(starts).toEqual([1, 2]);
    expect(early).toEqual([2, 3, 4]);
    expect(late).toEqual([3, 4]);
    stopEarly();
    stopLate();
    await bus.close();
  });
});

describe('a large chat', () => {
  it('hands each event out in chunks, yielding between them, every subscriber getting every event in order', async () => {
    const { bus, feeds } = feedsOnOwnBus(app);
    const user = await registerUser(app);
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'Large', memberIds: [] });
    const subscribers = 600;
    const seen = Array.from({ length: subscribers }, () => [] as number[]);
    const stops = await Promise.all(
      seen.map((events) => feeds.follow(chatId, { event: (event) => void events.push((event as { seq: number }).seq), fail: (error) => expect.fail(error.message) })),
    );
    const created = (seq: number) => ({ kind: 'message', type: 'CREATED', chatId, messageId: `m${seq}`, seq });
    await bus.publish(channels.chat(chatId), created(1));
    await bus.publish(channels.chat(chatId), created(2));
    // This turn of the event loop handed out one chunk only: the rest follows on later turns.
    const firstTurn = seen.filter((events) => events.length > 0).length;
    expect(firstTurn).toBeGreaterThan(0);
    expect(firstTurn).toBeLessThan(subscribers);
    await idle(100);
    for (const events of seen) expect(events).toEqual([1, 2]);
    stops.forEach((stop) => stop());
    await bus.close();
  });
});

describe('a feed whose first read waits for a pooled connection', () => {
  /** An app with one pooled connection, and `sleeps` statements of `ms` each queued on it. */
  async function busyPool(sleeps: number, ms: number) {
    const busy = await startTestApp({ PUSH_ENABLED: 'false', DATABASE_POOL_SIZE: '1' });
    const user = await registerUser(busy);
    const chatId = await createChat(busy, user, { kind: 'GROUP', title: 'Storm', memberIds: [] });
    await sendText(busy, user, chatId, 'before the storm');
    const occupied = Promise.all(Array.from({ length: sleeps }, () => busy.services.prisma.$queryRaw`SELECT 1 AS one FROM pg_sleep(${ms / 1_000})`));
    return { busy, user, chatId, occupied };
  }

  it('starts once the connection is free while the database answers the reads queued before it (busy, not out of reach)', async () => {
    // 8 statements of 150 ms ahead of it: the feed's read waits ~1.2 s, three times the bound.
    const { busy, chatId, occupied } = await busyPool(8, 150);
    try {
      const { bus, feeds } = feedsOnOwnBus(busy, { gapTimeoutMs: 400 });
      const starts: number[] = [];
      const seen: number[] = [];
      const started = Date.now();
      const stop = await feeds.follow(chatId, {
        start: (from) => starts.push(from),
        event: (event) => void seen.push((event as { seq: number }).seq),
        fail: (error) => expect.fail(error.message),
      });
      expect(Date.now() - started).toBeGreaterThan(800);
      expect(starts).toEqual([1]);
      await bus.publish(channels.chat(chatId), { kind: 'message', type: 'CREATED', chatId, messageId: 'm2', seq: 2 });
      expect(seen).toEqual([2]);
      stop();
      await bus.close();
    } finally {
      await occupied;
      await busy.stop();
    }
  });

  it('still ends with UNAVAILABLE when nothing is answered for the whole bound', async () => {
    // One statement holds the only connection past the bound: no answer at all meanwhile.
    const { busy, chatId, occupied } = await busyPool(1, 1_500);
    try {
      const { bus, feeds } = feedsOnOwnBus(busy, { gapTimeoutMs: 400 });
      const started = Date.now();
      const following = feeds.follow(chatId, { event: () => {}, fail: () => {} });
      await expect(following).rejects.toMatchObject({ extensions: { code: 'UNAVAILABLE' } });
      expect(Date.now() - started).toBeLessThan(1_300);
      await bus.close();
    } finally {
      await occupied;
      await busy.stop();
    }
  });
});
