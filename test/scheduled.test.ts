// Scheduled send: validation, sending at the time (embedded timers and BullMQ on Redis), cancel and
// reschedule, FAILED when the sender may no longer send, and exactly once across a restart of the
// API and with two instances up. A database of its own: every app sweeps the whole table.
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { deleteUnusedUploads } from '../src/files/cleanup.ts';
import { runScheduledMessage, scheduledClientId } from '../src/messages/scheduled.ts';
import { codeOf, createChat, gql, registerUser, scratchDatabaseUrl, startTestApp, testRedisUrl, uploadThroughFetch, type TestUser } from './support/helpers.ts';
import { BLOCK_USER, LEAVE_CHAT } from './support/operations.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

const SCHEDULE = `mutation ($input: ScheduleMessageInput!) { scheduleMessage(input: $input) { id sendAt state text kind chat { id } } }`;
const CANCEL = `mutation ($id: ID!) { cancelScheduledMessage(id: $id) { id state } }`;
const RESCHEDULE = `mutation ($id: ID!, $at: DateTime!) { rescheduleMessage(id: $id, sendAt: $at) { id state sendAt } }`;
const LIST = `query ($chatId: ID) { scheduledMessages(chatId: $chatId) { edges { node { id text sendAt state } } } }`;
const EVENTS = `subscription { scheduledMessageEvents { type reason scheduledMessage { id state message { id text scheduledFor } } } }`;

const database = scratchDatabaseUrl('kocmoc_scheduled');
const key = randomBytes(32).toString('base64');
const env = (extra: Record<string, string> = {}) => ({ DATABASE_URL: database.url, MESSAGE_ENCRYPTION_KEY: key, ...extra });
let app: App;
let alice: TestUser;
let bob: TestUser;
let group: string;
let url: string;

beforeAll(async () => {
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  app = await startTestApp(env());
  url = (await app.start()).url;
  [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Later', memberIds: [bob.id] });
});
afterAll(async () => {
  await app?.stop();
  await database.drop();
});

const inMs = (ms: number) => new Date(Date.now() + ms).toISOString();
const schedule = (on: App, user: TestUser, input: Record<string, unknown>) =>
  gql(on, SCHEDULE, { input: { chatId: group, kind: 'TEXT', text: 'later', ...input } }, { token: user.accessToken });
const sentCopies = (on: App, id: string) => on.services.prisma.message.findMany({ where: { clientMessageId: scheduledClientId(id) } });
const idle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForState(on: App, id: string, state: string, timeoutMs = 8_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await on.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id } });
    if (row.state === state) return row;
    if (Date.now() > deadline) throw new Error(`scheduled message ${id} is ${row.state}, not ${state}`);
    await idle(100);
  }
}

describe('scheduleMessage', () => {
  it('refuses sendAt in the past or beyond 365 days, bad content and chats you are not in', async () => {
    for (const sendAt of [inMs(-1_000), inMs(366 * 86_400_000)]) {
      const result = await schedule(app, alice, { sendAt });
      expect(codeOf(result)).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe('input.sendAt');
    }
    expect(codeOf(await schedule(app, alice, { sendAt: inMs(60_000), text: '  ' }))).toBe('BAD_USER_INPUT');
    const stranger = await registerUser(app);
    expect(codeOf(await schedule(app, stranger, { sendAt: inMs(60_000) }))).toBe('NOT_FOUND');
  });

  it('sends at sendAt as the sender, marked scheduledFor, and tells the sender live', async () => {
    const connection = connect(url, alice.accessToken);
    const events = subscribe(connection, EVENTS);
    try {
      await connection.connected;
      await settle();
      const sendAt = inMs(1_200);
      const scheduled = (await schedule(app, alice, { sendAt, text: 'good morning' })).data.scheduleMessage;
      expect(scheduled).toMatchObject({ state: 'PENDING', text: 'good morning', kind: 'TEXT', chat: { id: group } });
      const listed = await gql(app, LIST, { chatId: group }, { token: alice.accessToken });
      expect(listed.data.scheduledMessages.edges.map((e: any) => e.node.id)).toContain(scheduled.id);
      expect((await gql(app, LIST, {}, { token: bob.accessToken })).data.scheduledMessages.edges).toEqual([]);
      expect(await sentCopies(app, scheduled.id)).toEqual([]);

      const event = (await events.next(8_000)).data!.scheduledMessageEvents;
      expect(event).toMatchObject({ type: 'SENT', reason: null, scheduledMessage: { id: scheduled.id, state: 'SENT', message: { text: 'good morning' } } });
      expect(new Date(event.scheduledMessage.message.scheduledFor).toISOString()).toBe(new Date(sendAt).toISOString());
      const [message] = await sentCopies(app, scheduled.id);
      expect(message).toMatchObject({ senderId: alice.id, chatId: group });
      expect(message!.createdAt.getTime()).toBeGreaterThanOrEqual(new Date(sendAt).getTime() - 1_000);
    } finally {
      await connection.dispose();
    }
  });

  it('cancels and reschedules pending ones only', async () => {
    const cancelled = (await schedule(app, alice, { sendAt: inMs(800) })).data.scheduleMessage;
    expect((await gql(app, CANCEL, { id: cancelled.id }, { token: alice.accessToken })).data.cancelScheduledMessage.state).toBe('CANCELLED');
    const moved = (await schedule(app, alice, { sendAt: inMs(3_600_000), text: 'moved up' })).data.scheduleMessage;
    expect(codeOf(await gql(app, RESCHEDULE, { id: moved.id, at: inMs(800) }, { token: bob.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, RESCHEDULE, { id: moved.id, at: inMs(-5) }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect((await gql(app, RESCHEDULE, { id: moved.id, at: inMs(800) }, { token: alice.accessToken })).errors).toBeUndefined();
    await waitForState(app, moved.id, 'SENT');
    expect(await sentCopies(app, moved.id)).toHaveLength(1);
    expect(await sentCopies(app, cancelled.id)).toHaveLength(0);
    expect(codeOf(await gql(app, CANCEL, { id: moved.id }, { token: alice.accessToken }))).toBe('CONFLICT');
    expect(codeOf(await gql(app, CANCEL, { id: cancelled.id }, { token: alice.accessToken }))).toBe('CONFLICT');
  });

  it('refuses a reschedule into the past or beyond 365 days, and leaves it as it was', async () => {
    const kept = (await schedule(app, alice, { sendAt: inMs(3_600_000), text: 'stay put' })).data.scheduleMessage;
    for (const at of [inMs(-60_000), inMs(366 * 86_400_000)]) {
      const result = await gql(app, RESCHEDULE, { id: kept.id, at }, { token: alice.accessToken });
      expect(codeOf(result)).toBe('BAD_USER_INPUT');
      expect(result.errors![0]!.extensions!.field).toBe('sendAt');
    }
    const row = await app.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: kept.id } });
    expect(row).toMatchObject({ state: 'PENDING', sendAt: new Date(kept.sendAt) });
    await gql(app, CANCEL, { id: kept.id }, { token: alice.accessToken });
  });

  it('pages scheduledMessages (first:, after:) soonest first, without gaps or repeats', async () => {
    const erin = await registerUser(app);
    const own = await createChat(app, erin, { kind: 'GROUP', title: 'Pages', memberIds: [] });
    // Scheduled out of order; two at the same sendAt (then by id).
    const offsets = [5, 2, 4, 1, 3, 3];
    const made: Array<{ id: string; sendAt: string }> = [];
    const sameAt = inMs(3 * 3_600_000);
    for (const hours of offsets) {
      const sendAt = hours === 3 ? sameAt : inMs(hours * 3_600_000);
      made.push((await schedule(app, erin, { chatId: own, sendAt, text: `in ${hours} h` })).data.scheduleMessage);
    }
    const expected = [...made].sort((a, b) => a.sendAt.localeCompare(b.sendAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((row) => row.id);
    const PAGE = `query ($first: Int, $after: String) { scheduledMessages(first: $first, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`;
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: any = await gql(app, PAGE, { first: 4, after }, { token: erin.accessToken });
      expect(result.errors).toBeUndefined();
      const { edges, pageInfo } = result.data.scheduledMessages;
      expect(edges.length).toBeLessThanOrEqual(4);
      seen.push(...edges.map((edge: any) => edge.node.id));
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(seen).toEqual(expected);
    for (const id of seen) await gql(app, CANCEL, { id }, { token: erin.accessToken });
  });

  it("tells the sender's other devices live of a cancel (CANCELLED) and a reschedule (RESCHEDULED, with the new sendAt)", async () => {
    const LIVE = `subscription { scheduledMessageEvents { type reason scheduledMessageId sendAt scheduledMessage { id state sendAt } } }`;
    const phone = connect(url, alice.accessToken);
    const bobs = connect(url, bob.accessToken);
    const events = subscribe(phone, LIVE);
    const bobEvents = subscribe(bobs, LIVE);
    try {
      await Promise.all([phone.connected, bobs.connected]);
      await settle();
      const moved = (await schedule(app, alice, { sendAt: inMs(3_600_000), text: 'move me' })).data.scheduleMessage;
      const dropped = (await schedule(app, alice, { sendAt: inMs(3_600_000), text: 'drop me' })).data.scheduleMessage;
      const newTime = inMs(7_200_000);
      // From another device of alice's (a plain request, not the phone's socket).
      expect((await gql(app, RESCHEDULE, { id: moved.id, at: newTime }, { token: alice.accessToken })).errors).toBeUndefined();
      expect((await gql(app, CANCEL, { id: dropped.id }, { token: alice.accessToken })).errors).toBeUndefined();
      // Refused: nothing happened, nothing is told.
      expect(codeOf(await gql(app, CANCEL, { id: dropped.id }, { token: alice.accessToken }))).toBe('CONFLICT');
      expect(codeOf(await gql(app, CANCEL, { id: moved.id }, { token: bob.accessToken }))).toBe('NOT_FOUND');

      const rescheduled = (await events.next()).data!.scheduledMessageEvents;
      expect(rescheduled).toEqual({
        type: 'RESCHEDULED',
        reason: null,
        scheduledMessageId: moved.id,
        sendAt: new Date(newTime).toISOString(),
        scheduledMessage: { id: moved.id, state: 'PENDING', sendAt: new Date(newTime).toISOString() },
      });
      const cancelled = (await events.next()).data!.scheduledMessageEvents;
      expect(cancelled).toEqual({ type: 'CANCELLED', reason: null, scheduledMessageId: dropped.id, sendAt: null, scheduledMessage: { id: dropped.id, state: 'CANCELLED', sendAt: dropped.sendAt } });
      expect(await events.nothingWithin(300)).toBe(true);
      expect(await bobEvents.nothingWithin(100)).toBe(true);
      await gql(app, CANCEL, { id: moved.id }, { token: alice.accessToken });
    } finally {
      await Promise.all([phone.dispose(), bobs.dispose()]);
    }
  });

  it('keeps an upload from expiring while a schedule waits to send it; once sent or cancelled the usual rules apply', async () => {
    const upload = () => uploadThroughFetch(app, alice.accessToken, randomBytes(64), { kind: 'FILE', name: 'notes.bin' }).then((file) => file.id);
    const [waiting, cancelled, sent] = [await upload(), await upload(), await upload()];
    const scheduleFile = (attachmentId: string, sendAt: string) => schedule(app, alice, { kind: 'FILE', text: null, attachmentId, sendAt });
    const pending = (await scheduleFile(waiting, inMs(3_600_000))).data.scheduleMessage;
    const toCancel = (await scheduleFile(cancelled, inMs(3_600_000))).data.scheduleMessage;
    const soon = (await scheduleFile(sent, inMs(1_500))).data.scheduleMessage;
    await gql(app, CANCEL, { id: toCancel.id }, { token: alice.accessToken });
    // Refused at once now: an upload that is not yours (or none) could not be kept for you.
    const bobs = await uploadThroughFetch(app, bob.accessToken, randomBytes(64), { kind: 'FILE', name: 'b.bin' });
    expect(codeOf(await scheduleFile(bobs.id, inMs(60_000)))).toBe('BAD_USER_INPUT');
    expect(codeOf(await scheduleFile(randomUUID(), inMs(60_000)))).toBe('BAD_USER_INPUT');

    // An expiry that has passed for every upload so far.
    const expireAll = () => deleteUnusedUploads(app.services, new Date(Date.now() + 1_000));
    const remaining = async () =>
      (await app.services.prisma.attachment.findMany({ where: { id: { in: [waiting, cancelled, sent] } }, select: { id: true } })).map((row) => row.id).sort();
    await expireAll();
    expect(await remaining()).toEqual([waiting, sent].sort());
    expect(await app.services.storage.stat(cancelled)).toBeNull();
    expect(await app.services.storage.stat(waiting)).not.toBeNull();

    const done = await waitForState(app, soon.id, 'SENT');
    const message = await app.services.prisma.message.findUniqueOrThrow({ where: { id: done.messageId! } });
    expect(message.attachmentId).toBe(sent);
    await gql(app, CANCEL, { id: pending.id }, { token: alice.accessToken });
    await expireAll();
    // Sent: the message uses it. Cancelled: unused, expired.
    expect(await remaining()).toEqual([sent]);
    expect((await app.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: pending.id } })).attachmentId).toBeNull();
  });

  it('drops it as FAILED, with the reason, when the sender may no longer send then', async () => {
    const carol = await registerUser(app);
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Leaving', memberIds: [carol.id] });
    const connection = connect(url, carol.accessToken);
    const events = subscribe(connection, EVENTS);
    try {
      await connection.connected;
      await settle();
      const scheduled = (await schedule(app, carol, { chatId: chat, sendAt: inMs(1_000) })).data.scheduleMessage;
      expect((await gql(app, LEAVE_CHAT, { chatId: chat }, { token: carol.accessToken })).errors).toBeUndefined();
      const event = (await events.next(8_000)).data!.scheduledMessageEvents;
      expect(event).toMatchObject({ type: 'FAILED', scheduledMessage: { id: scheduled.id, state: 'FAILED', message: null } });
      expect(event.reason).toBeTruthy();
      expect(await sentCopies(app, scheduled.id)).toHaveLength(0);

      // A direct chat whose other member blocks the sender before sendAt: FAILED, with the reason, nothing sent.
      const dave = await registerUser(app);
      const direct = await createChat(app, carol, { kind: 'DIRECT', memberIds: [dave.id] });
      const blocked = (await schedule(app, carol, { chatId: direct, sendAt: inMs(1_000), text: 'you there?' })).data.scheduleMessage;
      expect((await gql(app, BLOCK_USER, { userId: carol.id }, { token: dave.accessToken })).data.blockUser).toBe(true);
      const failed = (await events.next(8_000)).data!.scheduledMessageEvents;
      expect(failed).toMatchObject({ type: 'FAILED', scheduledMessage: { id: blocked.id, state: 'FAILED', message: null } });
      expect(failed.reason).toBeTruthy();
      expect((await app.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: blocked.id } })).failureReason).toBe(failed.reason);
      expect(await sentCopies(app, blocked.id)).toHaveLength(0);
      const history = await gql(app, `query ($id: ID!) { chat(id: $id) { messages(first: 10) { edges { node { id } } } } }`, { id: direct }, { token: dave.accessToken });
      expect(history.data.chat.messages.edges).toEqual([]);
    } finally {
      await connection.dispose();
    }
  });

  it('sends once when two runs race for the same due schedule', async () => {
    const scheduled = (await schedule(app, alice, { sendAt: inMs(3_600_000) })).data.scheduleMessage;
    await app.services.prisma.scheduledMessage.update({ where: { id: scheduled.id }, data: { sendAt: new Date() } });
    await Promise.all([runScheduledMessage(app.services, scheduled.id), runScheduledMessage(app.services, scheduled.id)]);
    expect(await sentCopies(app, scheduled.id)).toHaveLength(1);
  });
});

describe.each([
  ['embedded (no Redis)', () => ({})],
  ['BullMQ on Redis', () => ({ REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: `kocmoc-test-${randomUUID()}` })],
])('across a restart of the API: %s', (_mode, modeEnv) => {
  it('sends what came due while the API was down on start, late, exactly once', async () => {
    const settings = env(modeEnv());
    const first = await startTestApp(settings);
    const sendAt = inMs(1_000);
    const scheduled = (await schedule(first, alice, { sendAt, text: 'while you were down' })).data.scheduleMessage;
    await first.stop();
    await idle(1_500);
    const second = await startTestApp(settings);
    try {
      await waitForState(second, scheduled.id, 'SENT');
      const copies = await sentCopies(second, scheduled.id);
      expect(copies).toHaveLength(1);
      expect(copies[0]!.createdAt.getTime()).toBeGreaterThan(new Date(sendAt).getTime());
      // Sent late, but scheduledFor is the time it was scheduled for.
      const sent = await gql(second, `query ($id: ID!) { chat(id: $id) { messages(last: 5) { edges { node { id scheduledFor } } } } }`, { id: group }, { token: alice.accessToken });
      const node = sent.data.chat.messages.edges.map((edge: any) => edge.node).find((n: any) => n.id === copies[0]!.id);
      expect(node).toBeDefined();
      expect(new Date(node.scheduledFor).toISOString()).toBe(new Date(scheduled.sendAt).toISOString());
    } finally {
      await second.stop();
    }
  });

  it('sends once with two instances up at the time', async () => {
    const settings = env(modeEnv());
    const [one, two] = await Promise.all([startTestApp(settings), startTestApp(settings)]);
    try {
      const scheduled = (await schedule(one, alice, { sendAt: inMs(1_000), text: 'once' })).data.scheduleMessage;
      // The second instance hands it to its runner too (as its sweep would).
      await two.services.scheduledSends.schedule(scheduled.id, new Date(scheduled.sendAt));
      await waitForState(one, scheduled.id, 'SENT');
      await idle(500);
      expect(await sentCopies(one, scheduled.id)).toHaveLength(1);
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
  });
});
