// The rules of calls: one call per chat (glare ends in one call), who may signal whom, blocks,
// declines, group calls, signal order and size, and devices that drop out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, onlyRateLimits, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { BLOCK_USER, SEND_MESSAGE } from './support/operations.ts';
import { openConnections, settle } from './support/ws-helpers.ts';
import { ANSWER_CALL, callDevice, DECLINE_CALL, END_CALL, execute, SEND_CALL_SIGNAL, START_CALL, type CallDevice } from './support/call-peers.ts';

const RECONNECT_SECONDS = 2;
/** RATE_LIMIT_CALL_SIGNALS here: more than any test but the limit's own sends in one call. */
const SIGNALS_PER_CALL = 100;
let app: App;
let url: string;
const sockets = openConnections();

beforeAll(async () => {
  app = await startTestApp(
    { CALL_RECONNECT_SECONDS: String(RECONNECT_SECONDS), CALL_RING_SECONDS: '10', ...onlyRateLimits({ RATE_LIMIT_CALL_SIGNALS: `${SIGNALS_PER_CALL}/1h` }) },
    { presence: { offlineGraceMs: 200 } },
  );
  url = (await app.start()).url;
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const device = (user: TestUser) => callDevice(sockets.connect(url, user.accessToken), user.accessToken);
const start = (user: TestUser, chatId: string, extra: Record<string, unknown> = {}) =>
  gql(app, START_CALL, { input: { chatId, media: 'VIDEO', ...extra } }, { token: user.accessToken });
const run = (mutation: string, user: TestUser, id: string) => gql(app, mutation, { id }, { token: user.accessToken });
const signal = (user: TestUser, input: Record<string, unknown>) =>
  gql(app, SEND_CALL_SIGNAL, { input: { kind: 'ICE_CANDIDATE', payload: '{"candidate":""}', ...input } }, { token: user.accessToken });

async function pair() {
  const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
  return { alice, bob, chatId };
}

describe('starting calls', () => {
  it('allows one call per chat: a second start is CONFLICT naming the ongoing call', async () => {
    const { alice, bob, chatId } = await pair();
    const first = (await start(alice, chatId)).data.startCall;
    const second = await start(bob, chatId);
    expect(codeOf(second)).toBe('CONFLICT');
    expect(second.errors![0]!.extensions!.callId).toBe(first.id);
    await run(END_CALL, alice, first.id);
    expect((await start(bob, chatId)).data.startCall.state).toBe('RINGING');
  });

  it('ends in one call when both call each other at once (glare): the other joins it', async () => {
    const { alice, bob, chatId } = await pair();
    const [fromAlice, fromBob] = await Promise.all([start(alice, chatId), start(bob, chatId)]);
    const won = [fromAlice, fromBob].filter((r) => r.data?.startCall);
    const lost = [fromAlice, fromBob].filter((r) => codeOf(r) === 'CONFLICT');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    const callId = won[0]!.data.startCall.id;
    expect(lost[0]!.errors![0]!.extensions!.callId).toBe(callId);
    const loser = won[0] === fromAlice ? bob : alice;
    expect((await run(ANSWER_CALL, loser, callId)).data.answerCall.state).toBe('ACTIVE');
    expect(await app.services.prisma.call.count({ where: { chatId } })).toBe(1);
  });

  it('is idempotent by clientCallId', async () => {
    const { alice, chatId } = await pair();
    const [a, b] = await Promise.all([start(alice, chatId, { clientCallId: 'c-1' }), start(alice, chatId, { clientCallId: 'c-1' })]);
    expect(a.data.startCall.id).toBe(b.data.startCall.id);
    const other = await pair();
    const reused = await start(alice, await createChat(app, alice, { kind: 'DIRECT', memberIds: [other.bob.id] }), { clientCallId: 'c-1' });
    expect(codeOf(reused)).toBe('CONFLICT');
    expect(reused.errors![0]!.extensions!.field).toBe('input.clientCallId');
  });

  it('hands out no ICE servers without TURN_URLS', async () => {
    const { alice } = await pair();
    expect((await gql(app, `{ iceServers { urls } }`, {}, { token: alice.accessToken })).data.iceServers).toEqual([]);
  });

  it('refuses chats you are not in, groups over 8 members, and sending CALL messages by hand', async () => {
    const { alice, chatId } = await pair();
    const stranger = await registerUser(app);
    expect(codeOf(await start(stranger, chatId))).toBe('NOT_FOUND');
    const others = await Promise.all(Array.from({ length: 8 }, () => registerUser(app)));
    const big = await createChat(app, alice, { kind: 'GROUP', title: 'Nine', memberIds: others.map((u) => u.id) });
    const refused = await start(alice, big);
    expect(codeOf(refused)).toBe('BAD_USER_INPUT');
    expect(refused.errors![0]!.extensions!.field).toBe('input.chatId');
    const byHand = await gql(app, SEND_MESSAGE, { input: { chatId, kind: 'CALL' } }, { token: alice.accessToken });
    expect(codeOf(byHand)).toBe('BAD_USER_INPUT');
  });

  it('rings nothing when the callee blocked the caller, who sees DECLINED as after a person’s decline', async () => {
    const { alice, bob, chatId } = await pair();
    const bobsDevice = device(bob);
    await settle();
    await gql(app, BLOCK_USER, { userId: alice.id }, { token: bob.accessToken });
    const started = (await start(alice, chatId)).data.startCall;
    expect(started.state).toBe('RINGING');
    expect(await bobsDevice.noneWithin('INCOMING', 500)).toBe(true);
    let call = started;
    for (let i = 0; i < 200 && call.state !== 'ENDED'; i++) {
      await settle(100);
      call = (await gql(app, `query ($id: ID!) { call(id: $id) { state endReason } }`, { id: started.id }, { token: alice.accessToken })).data.call;
    }
    expect(call).toEqual({ state: 'ENDED', endReason: 'DECLINED' });
    expect(bobsDevice.received).toEqual([]);
  });

  it('is BUSY when the callee is in another call', async () => {
    const { alice, bob, chatId } = await pair();
    const carol = await registerUser(app);
    const other = await createChat(app, carol, { kind: 'DIRECT', memberIds: [bob.id] });
    const ongoing = (await start(carol, other)).data.startCall;
    await run(ANSWER_CALL, bob, ongoing.id);
    const busy = (await start(alice, chatId)).data.startCall;
    expect(busy).toMatchObject({ state: 'ENDED', endReason: 'BUSY' });
  });
});

describe('answering, declining and leaving', () => {
  it('rings a device that subscribes while the call rings', async () => {
    const { alice, bob, chatId } = await pair();
    const call = (await start(alice, chatId)).data.startCall;
    const late = device(bob);
    expect((await late.next('INCOMING')).call).toMatchObject({ id: call.id, state: 'RINGING', ringing: true });
    await run(DECLINE_CALL, bob, call.id);
    const afterwards = device(bob);
    expect(await afterwards.noneWithin('INCOMING', 500)).toBe(true);
  });

  it('ends DECLINED when the callee declines, and stops every device of theirs', async () => {
    const { alice, bob, chatId } = await pair();
    const [a, b] = [device(alice), device(bob)];
    await settle();
    const call = (await start(alice, chatId)).data.startCall;
    await b.next('INCOMING');
    expect((await run(DECLINE_CALL, bob, call.id)).data.declineCall).toMatchObject({ state: 'ENDED', endReason: 'DECLINED', ringing: false });
    expect((await a.next('STATE_CHANGED')).call).toMatchObject({ state: 'ENDED', endReason: 'DECLINED' });
    expect((await b.next('STATE_CHANGED')).call.ringing).toBe(false);
    expect(codeOf(await run(ANSWER_CALL, bob, call.id))).toBe('CONFLICT');
    expect(codeOf(await run(DECLINE_CALL, alice, call.id))).toBe('CONFLICT');
  });

  it('runs a group call as long as two devices are in it; members may join late', async () => {
    const [alice, bob, carol, dave] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    const chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Team', memberIds: [bob.id, carol.id, dave.id] });
    const call = (await start(alice, chatId)).data.startCall;
    await run(ANSWER_CALL, bob, call.id);
    await run(DECLINE_CALL, carol, call.id);
    const joined = (await run(ANSWER_CALL, dave, call.id)).data.answerCall;
    expect(joined.participants.map((p: any) => p.user.id)).toEqual([alice.id, bob.id, dave.id]);
    expect((await run(END_CALL, alice, call.id)).data.endCall.state).toBe('ACTIVE');
    // Carol declined, then changes her mind: a group call takes her while it runs.
    expect((await run(ANSWER_CALL, carol, call.id)).data.answerCall.state).toBe('ACTIVE');
    await run(END_CALL, bob, call.id);
    const last = (await run(END_CALL, dave, call.id)).data.endCall;
    expect(last).toMatchObject({ state: 'ENDED', endReason: 'HANGUP' });
    expect(last.participants.every((p: any) => p.leftAt)).toBe(true);
  });
});

describe('signals', () => {
  async function activeCall() {
    const { alice, bob, chatId } = await pair();
    const [a, b] = [device(alice), device(bob)];
    await settle();
    const call = (await start(alice, chatId)).data.startCall;
    await run(ANSWER_CALL, bob, call.id);
    return { alice, bob, a, b, call, chatId };
  }

  it('are FORBIDDEN to a device that is not in the call, and from a device that is not', async () => {
    const { alice, bob, b, call } = await activeCall();
    const stranger = await registerUser(app);
    const strangerDevice = device(stranger);
    expect(codeOf(await signal(alice, { callId: call.id, toDeviceId: strangerDevice.sessionId }))).toBe('FORBIDDEN');
    expect(codeOf(await signal(stranger, { callId: call.id, toDeviceId: b.sessionId }))).toBe('NOT_FOUND');
    // Bob's second device is no participant: it may neither send nor receive.
    const bobAgain = await gql(app, `mutation ($i: LoginInput!) { login(input: $i) { accessToken } }`, { i: { login: bob.username, password: bob.password } });
    const second = { ...bob, accessToken: bobAgain.data.login.accessToken };
    expect(codeOf(await signal(second, { callId: call.id, toDeviceId: callDevice(sockets.connect(url, alice.accessToken), alice.accessToken).sessionId }))).toBe('FORBIDDEN');
    expect(codeOf(await signal(alice, { callId: call.id, toDeviceId: callDevice(sockets.connect(url, second.accessToken), second.accessToken).sessionId }))).toBe('FORBIDDEN');
    // Only the caller's OFFER may name no device, and only while someone rings.
    const unnamed = await signal(bob, { callId: call.id, kind: 'OFFER' });
    expect(codeOf(unnamed)).toBe('BAD_USER_INPUT');
    expect(unnamed.errors![0]!.extensions!.field).toBe('input.toDeviceId');
  });

  it('are FORBIDDEN from a ringing device that has not answered', async () => {
    const { alice, bob, chatId } = await pair();
    const a = device(alice);
    await settle();
    const call = (await start(alice, chatId)).data.startCall;
    expect(codeOf(await signal(bob, { callId: call.id, toDeviceId: a.sessionId, kind: 'ANSWER' }))).toBe('FORBIDDEN');
  });

  it('refuse payloads over 64 KiB, and empty ones', async () => {
    const { alice, b, call } = await activeCall();
    const big = await signal(alice, { callId: call.id, toDeviceId: b.sessionId, payload: 'x'.repeat(64 * 1024 + 1) });
    expect(codeOf(big)).toBe('BAD_USER_INPUT');
    expect(big.errors![0]!.extensions!.field).toBe('input.payload');
    expect(codeOf(await signal(alice, { callId: call.id, toDeviceId: b.sessionId, payload: '' }))).toBe('BAD_USER_INPUT');
    expect((await signal(alice, { callId: call.id, toDeviceId: b.sessionId, payload: 'y'.repeat(64 * 1024) })).data.sendCallSignal).toBe(true);
  });

  it('are RATE_LIMITED per call beyond RATE_LIMIT_CALL_SIGNALS, counted across its devices', async () => {
    const { alice, bob, a, b, call } = await activeCall();
    const results = await Promise.all(
      Array.from({ length: SIGNALS_PER_CALL }, (_, i) => signal(i % 2 ? alice : bob, { callId: call.id, toDeviceId: i % 2 ? b.sessionId : a.sessionId })),
    );
    expect(results.every((r) => r.data?.sendCallSignal === true)).toBe(true);
    const refused = await signal(alice, { callId: call.id, toDeviceId: b.sessionId });
    expect(codeOf(refused)).toBe('RATE_LIMITED');
    expect(refused.errors![0]!.extensions!.retryAfterSeconds).toBeGreaterThan(0);
    // Another call has a budget of its own.
    const other = await activeCall();
    expect((await signal(other.alice, { callId: other.call.id, toDeviceId: other.b.sessionId })).data.sendCallSignal).toBe(true);
  });

  it('arrive in the order one device sent them, even when it does not wait for each', async () => {
    const { a, b, call } = await activeCall();
    const sent = Array.from({ length: 60 }, (_, i) => `candidate-${i}`);
    const results = await Promise.all(
      sent.map((payload) => execute(a.connection, SEND_CALL_SIGNAL, { input: { callId: call.id, toDeviceId: b.sessionId, kind: 'ICE_CANDIDATE', payload } })),
    );
    expect(results.every((r) => r.data?.sendCallSignal === true)).toBe(true);
    const received: string[] = [];
    while (received.length < sent.length) received.push((await b.next('SIGNAL')).signal!.payload);
    expect(received).toEqual(sent);
    expect(b.received.filter((e) => e.type === 'SIGNAL').every((e) => e.signal!.fromDeviceId === a.sessionId)).toBe(true);
  });

  it('keep the CALL message in the unread count like other messages', async () => {
    const { alice, bob, chatId, call } = await activeCall();
    await sendText(app, alice, chatId, 'after the call started');
    await run(END_CALL, alice, call.id);
    const chat = (await gql(app, `query ($c: ID!) { chat(id: $c) { unreadCount } }`, { c: chatId }, { token: bob.accessToken })).data.chat;
    expect(chat.unreadCount).toBe(2);
  });
});

describe('a device that drops out', () => {
  async function connectedCall() {
    const { alice, bob, chatId } = await pair();
    const a: CallDevice = device(alice);
    const bobConnection = sockets.connect(url, bob.accessToken);
    const b = callDevice(bobConnection, bob.accessToken);
    await settle();
    const call = (await start(alice, chatId)).data.startCall;
    await b.next('INCOMING');
    await execute(bobConnection, ANSWER_CALL, { id: call.id });
    await settle(200);
    return { alice, bob, a, b, call, bobConnection };
  }

  it(`leaves with FAILED when it does not come back within CALL_RECONNECT_SECONDS`, async () => {
    const { a, bobConnection, call } = await connectedCall();
    await bobConnection.dispose();
    let ended = await a.next('STATE_CHANGED', (RECONNECT_SECONDS + 5) * 1000);
    while (ended.call.state !== 'ENDED') ended = await a.next('STATE_CHANGED', (RECONNECT_SECONDS + 5) * 1000);
    expect(ended.call).toMatchObject({ state: 'ENDED', endReason: 'FAILED' });
    expect(ended.call.id).toBe(call.id);
  });

  it('leaves with FAILED too when its user has no connection left, even without a callEvents stream', async () => {
    const { alice, bob, chatId } = await pair();
    const a = device(alice);
    const bobsSocket = sockets.connect(url, bob.accessToken); // presence only: no callEvents
    await bobsSocket.connected;
    await settle();
    const call = (await start(alice, chatId)).data.startCall;
    await run(ANSWER_CALL, bob, call.id); // over HTTP
    await bobsSocket.dispose();
    let ended = await a.next('STATE_CHANGED', (RECONNECT_SECONDS + 5) * 1000);
    while (ended.call.state !== 'ENDED') ended = await a.next('STATE_CHANGED', (RECONNECT_SECONDS + 5) * 1000);
    expect(ended.call).toMatchObject({ id: call.id, state: 'ENDED', endReason: 'FAILED' });
  });

  it('stays in the call when it comes back in time', async () => {
    const { bob, a, b, call } = await connectedCall();
    b.stop(); // the stream drops...
    await settle(300);
    callDevice(sockets.connect(url, bob.accessToken), bob.accessToken); // ...and the device subscribes again
    expect(await a.noneWithin('STATE_CHANGED', (RECONNECT_SECONDS + 1) * 1000)).toBe(true);
    const now = (await gql(app, `query ($id: ID!) { call(id: $id) { state } }`, { id: call.id }, { token: bob.accessToken })).data.call;
    expect(now.state).toBe('ACTIVE');
  });
});
