// Each instance keeps one member list per chat for delivering its message events
// (src/realtime/chat-members.ts). The proof that a kept list never lets a message through to
// someone removed before it was sent: two instances on one Redis, messages streaming through both
// while a member is removed, and the removed member subscribed on both.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, startTestApp, testRedisUrl, type TestUser } from './support/helpers.ts';
import { MESSAGE_EVENTS, REMOVE_CHAT_MEMBER, SEND_MESSAGE_RECEIPT } from './support/operations.ts';
import { openConnections, settle, subscribe, type Subscription } from './support/ws-helpers.ts';

const prefix = `kocmoc-test:${randomUUID()}:`;
const sockets = openConnections();
const queriesOfB: string[] = [];
let a: App;
let b: App;
let urls: [string, string];

beforeAll(async () => {
  const start = (onQuery?: (sql: string) => void) =>
    startTestApp({ REDIS_URL: testRedisUrl(), PUSH_ENABLED: 'false' }, { channelPrefix: prefix, presence: { keyPrefix: prefix }, onQuery });
  [a, b] = await Promise.all([start(), start((sql) => queriesOfB.push(sql))]);
  const [onA, onB] = await Promise.all([a.start(), b.start()]);
  urls = [onA.url, onB.url];
});
afterAll(() => sockets.closeAll().then(() => Promise.all([a, b].map((app) => app?.stop()))));

/** `count` sends by `sender`, alternating between the two instances, two at a time. */
async function sendThroughBoth(sender: TestUser, chatId: string, count: number, tag: string) {
  const loop = async (app: App, from: number) => {
    for (let i = from; i < count; i += 2) {
      const result = await gql(app, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text: `${tag} ${i}` } }, { token: sender.accessToken });
      expect(result.errors).toBeUndefined();
    }
  };
  await Promise.all([loop(a, 0), loop(b, 1)]);
}

/** The message events of `user` in one chat, on each instance. */
async function watchOnBoth(user: TestUser, chatId: string) {
  return urls.map((url) => subscribe(sockets.connect(url, user.accessToken), MESSAGE_EVENTS, { chatId }));
}

/** Positions received after `after` (probes before it are not the test's). */
const seqsOf = (subscription: Subscription, after = 0) =>
  subscription.results.map((result) => result.data?.messageEvents?.seq as number).filter((seq) => seq > after);

async function collect(subscription: Subscription, count: number, after = 0) {
  for (let i = 0; i < 200 && seqsOf(subscription, after).length < count; i++) await settle(50);
  return seqsOf(subscription, after);
}

/**
 * Subscriptions go live asynchronously (a fresh instance also subscribes in Redis): sends probes
 * until one reaches every subscription. Returns the chat's position then: the test's messages follow it.
 */
async function untilLive(sender: TestUser, chatId: string, subscriptions: Subscription[]) {
  for (let probe = 0; probe < 20; probe++) {
    const result = await gql(a, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text: `probe ${probe}` } }, { token: sender.accessToken });
    const seq = result.data.sendMessage.seq as number;
    for (let i = 0; i < 10 && !subscriptions.every((s) => seqsOf(s).includes(seq)); i++) await settle(50);
    if (subscriptions.every((s) => seqsOf(s).includes(seq))) return seq;
  }
  throw new Error('the subscriptions never went live');
}

describe('member lists kept per chat and instance', () => {
  it('removing a member while messages stream through two instances: nothing sent after the removal reaches them on either', async () => {
    const [owner, removed, staying] = await Promise.all([registerUser(a), registerUser(a), registerUser(b)]);
    const chatId = await createChat(a, owner, { kind: 'GROUP', title: 'Ordering', memberIds: [removed.id, staying.id] });
    const [removedOnA, removedOnB] = await watchOnBoth(removed, chatId);
    const [stayingOnA, stayingOnB] = await watchOnBoth(staying, chatId);
    const start = await untilLive(owner, chatId, [removedOnA!, removedOnB!, stayingOnA!, stayingOnB!]);

    const [before, during, after] = [20, 20, 20];
    await sendThroughBoth(owner, chatId, before, 'before');
    // The removal lands among sends on both instances; each instance's list was read before it.
    const removal = gql(a, REMOVE_CHAT_MEMBER, { chatId, userId: removed.id }, { token: owner.accessToken });
    await Promise.all([sendThroughBoth(owner, chatId, during, 'during'), removal]);
    expect((await removal).errors).toBeUndefined();
    // Every message past this position was sent after the removal had committed.
    const { lastSeq: removedBy } = await a.services.prisma.chat.findUniqueOrThrow({ where: { id: chatId }, select: { lastSeq: true } });
    await sendThroughBoth(owner, chatId, after, 'after');

    const total = before + during + after;
    const everything = Array.from({ length: total }, (_, i) => start + i + 1);
    // The stream went on, in order and complete, for the member who stayed, on both instances.
    expect(await collect(stayingOnA!, total, start)).toEqual(everything);
    expect(await collect(stayingOnB!, total, start)).toEqual(everything);
    expect(removedBy).toBeLessThan(start + total);
    for (const subscription of [removedOnA!, removedOnB!]) {
      expect(await subscription.nothingWithin(300)).toBe(true);
      const seqs = seqsOf(subscription, start);
      // Everything sent while they were a member, in order; nothing sent after they were removed.
      expect(seqs.slice(0, before)).toEqual(everything.slice(0, before));
      expect(seqs).toEqual(everything.slice(0, seqs.length));
      expect(Math.max(...seqs)).toBeLessThanOrEqual(removedBy);
    }
  });

  it('reads a chat’s member list once for a stream of messages, not once per message', async () => {
    const [owner, ...members] = await Promise.all([registerUser(a), registerUser(a), registerUser(a), registerUser(a)]);
    const chatId = await createChat(a, owner, { kind: 'GROUP', title: 'One read', memberIds: members.map((m) => m.id) });
    const atStart = queriesOfB.length;
    const subscriptions = members.map((member) => subscribe(sockets.connect(urls[1], member.accessToken), MESSAGE_EVENTS, { chatId }));
    const start = await untilLive(owner, chatId, subscriptions);
    const before = queriesOfB.length;
    const messages = 10;
    for (let i = 0; i < messages; i++) {
      const result = await gql(a, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text: `one read ${i}` } }, { token: owner.accessToken });
      expect(result.errors).toBeUndefined();
    }
    for (const subscription of subscriptions) expect(await collect(subscription, messages, start)).toHaveLength(messages);
    // One list for the probes and all ten messages; no membership read per event.
    expect(queriesOfB.slice(atStart).filter((sql) => sql.includes('"membersVersion" AS version'))).toHaveLength(1);
    expect(queriesOfB.slice(before).filter((sql) => /FROM "public"\."ChatMember"/.test(sql))).toEqual([]);
  });
});
