// The same call with its two sides on two server instances sharing PostgreSQL and Redis: ringing,
// the race to answer, signals and the data channel all cross instances.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, startTestApp, testRedisUrl } from './support/helpers.ts';
import { LOGIN } from './support/operations.ts';
import { openConnections, settle } from './support/ws-helpers.ts';
import { ANSWER_CALL, callDevice, END_CALL, execute, SEND_CALL_SIGNAL, START_CALL, webrtcPeer } from './support/call-peers.ts';

const prefix = `kocmoc-test:${randomUUID()}:`;
let one: App;
let two: App;
let urlOne: string;
let urlTwo: string;
const sockets = openConnections();

beforeAll(async () => {
  const start = () =>
    startTestApp(
      { REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: `kocmoc-test-${randomUUID()}`, CALL_RING_SECONDS: '20' },
      { channelPrefix: prefix, presence: { keyPrefix: prefix } },
    );
  [one, two] = await Promise.all([start(), start()]);
  [urlOne, urlTwo] = [(await one.start()).url, (await two.start()).url];
});
afterAll(async () => {
  await sockets.closeAll();
  await Promise.all([one?.stop(), two?.stop()]);
});

describe('a call across two instances', () => {
  it('rings, answers once, signals and connects with the caller on one instance and the callee on the other', async () => {
    const [alice, bob] = await Promise.all([registerUser(one), registerUser(two)]);
    const chatId = await createChat(one, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const bobsOtherToken = (await gql(two, LOGIN, { input: { login: bob.username, password: bob.password } })).data.login.accessToken;
    const a = callDevice(sockets.connect(urlOne, alice.accessToken), alice.accessToken);
    const b1 = callDevice(sockets.connect(urlTwo, bob.accessToken), bob.accessToken);
    const b2 = callDevice(sockets.connect(urlOne, bobsOtherToken), bobsOtherToken);
    await settle(600); // a fresh instance's first subscriptions also open its Redis subscriptions

    const call = (await execute(a.connection, START_CALL, { input: { chatId, media: 'VIDEO' } })).data!.startCall;
    await Promise.all([b1.next('INCOMING'), b2.next('INCOMING')]);

    const caller = webrtcPeer(a, call.id);
    caller.attach();
    const callerChannel = caller.call();
    const offer = await b1.next('SIGNAL');
    expect(offer.signal).toMatchObject({ kind: 'OFFER', fromDeviceId: a.sessionId });

    // Both of Bob's devices answer at once, through different instances: exactly one wins.
    const [first, second] = await Promise.all([execute(b1.connection, ANSWER_CALL, { id: call.id }), execute(b2.connection, ANSWER_CALL, { id: call.id })]);
    const winners = [first, second].filter((r) => r.data?.answerCall);
    expect(winners).toHaveLength(1);
    expect([first, second].map(codeOf).filter(Boolean)).toEqual(['CONFLICT']);
    const [winner, loser] = winners[0] === first ? [b1, b2] : [b2, b1];
    expect((await loser.next('ANSWERED_ELSEWHERE')).call.state).toBe('ACTIVE');

    const callee = webrtcPeer(winner, call.id);
    callee.attach();
    await callee.handle((winner === b1 ? offer : await b2.next('SIGNAL')).signal!);
    const [aliceSide, bobSide] = await Promise.all([callerChannel, callee.channelOpened]);
    const heard = new Promise<string>((resolve) => aliceSide.onMessage.subscribe((data) => resolve(String(data))));
    bobSide.send('across instances');
    expect(await heard).toBe('across instances');

    const ended = (await execute(winner.connection, END_CALL, { id: call.id })).data!.endCall;
    expect(ended).toMatchObject({ state: 'ENDED', endReason: 'HANGUP' });
    let seen = await a.next('STATE_CHANGED');
    while (seen.call.state !== 'ENDED') seen = await a.next('STATE_CHANGED');
    await Promise.all([caller.close(), callee.close()]);
  });

  it('relays to a device that just joined on the other instance, though this one had read the call before', async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(one), registerUser(one), registerUser(two)]);
    const chatId = await createChat(one, alice, { kind: 'GROUP', title: 'Three', memberIds: [bob.id, carol.id] });
    const carolsDevice = callDevice(sockets.connect(urlTwo, carol.accessToken), carol.accessToken);
    await settle(600);
    const call = (await gql(one, START_CALL, { input: { chatId, media: 'AUDIO' } }, { token: alice.accessToken })).data.startCall;
    await gql(one, ANSWER_CALL, { id: call.id }, { token: bob.accessToken });
    const signal = (toDeviceId: string) =>
      gql(one, SEND_CALL_SIGNAL, { input: { callId: call.id, toDeviceId, kind: 'OFFER', payload: 'sdp' } }, { token: bob.accessToken });
    // Instance one reads the call for Bob's signal to Alice, and keeps what it read for a moment...
    expect((await signal(call.participants[0].device.id)).data.sendCallSignal).toBe(true);
    // ...when Carol joins through instance two, which instance one hears nothing of (no stream of theirs there).
    await gql(two, ANSWER_CALL, { id: call.id }, { token: carol.accessToken });
    expect((await signal(carolsDevice.sessionId)).data.sendCallSignal).toBe(true);
    expect((await carolsDevice.next('SIGNAL')).signal).toMatchObject({ kind: 'OFFER', payload: 'sdp' });
  });
});

