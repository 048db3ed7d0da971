// The per-chat feed orders message events, fills gaps once, and shares event objects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createEventBus } from '../src/realtime/bus.ts';
import { createChatFeeds } from '../src/realtime/chat-feed.ts';
import { channels, type ChatTopicEvent } from '../src/realtime/events.ts';
import { createChat, registerUser, sendText, startTestApp } from './support/helpers.ts';

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
    const { logger, prisma } = app.services;
    // A bus of our own: the app's sends do not reach it, so the test decides what arrives and when.
    const bus = createEventBus({ logger });
    const feeds = createChatFeeds({ bus, prisma, logger, holdMs: 50 });
    const user = await registerUser(app);
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'Feed', memberIds: [] });
    const [first, second, third] = [await sendText(app, user, chatId, 'a'), await sendText(app, user, chatId, 'b'), await sendText(app, user, chatId, 'c')];

    // The feed starts at the chat's current position (3): pretend the three are not sent yet.
    await prisma.chat.update({ where: { id: chatId }, data: { lastSeq: 0 } });
    const seenByA: ChatTopicEvent[] = [];
    const seenByB: ChatTopicEvent[] = [];
    const stopA = await feeds.follow(chatId, (event) => seenByA.push(event));
    const stopB = await feeds.follow(chatId, (event) => seenByB.push(event));

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
});
