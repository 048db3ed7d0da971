// Calls end to end: graphql-ws devices that ring, answer and hang up, and real WebRTC peers
// (werift) that signal only through Kocmoc and open a data channel, directly and through a real
// coturn with the credentials `iceServers` hands out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, startTestApp, unusedPort, type TestUser } from './support/helpers.ts';
import { LOGIN } from './support/operations.ts';
import { openConnections, settle } from './support/ws-helpers.ts';
import { ANSWER_CALL, callDevice, END_CALL, execute, ICE_SERVERS, START_CALL, webrtcPeer, type CallDevice, type PeerOptions } from './support/call-peers.ts';
import { startTurnServer, type TurnServer } from './support/turn-server.ts';

const TURN_SECRET = 'kocmoc-test-turn-secret';
let app: App;
let url: string;
let turn: TurnServer;
const sockets = openConnections();

beforeAll(async () => {
  turn = await startTurnServer({ port: await unusedPort(), secret: TURN_SECRET });
  app = await startTestApp({ TURN_URLS: `stun:127.0.0.1:${turn.port},turn:127.0.0.1:${turn.port}?transport=udp`, TURN_SECRET });
  url = (await app.start()).url;
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
  await turn?.stop();
});

/** A second device session of `user` (logs in again). */
async function secondDevice(user: TestUser) {
  const result = await gql(app, LOGIN, { input: { login: user.username, password: user.password } });
  return result.data.login.accessToken as string;
}

function device(token: string): CallDevice {
  return callDevice(sockets.connect(url, token), token);
}

const MESSAGE_CALL = `query ($c: ID!) { chat(id: $c) { unreadCount messages(last: 1) { edges { node { kind sender { id } call { media state endReason durationSeconds } } } } } }`;

/**
 * A calls B; B's two devices ring; B1 answers and B2 hears ANSWERED_ELSEWHERE; the peers signal
 * through sendCallSignal, open a data channel and exchange a message; A hangs up.
 */
async function callAndTalk(peerOptions: PeerOptions) {
  const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  const chatId = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
  const a = device(alice.accessToken);
  const b1 = device(bob.accessToken);
  const b2 = device(await secondDevice(bob));
  await settle();

  const started = await execute(a.connection, START_CALL, { input: { chatId, media: 'AUDIO' } });
  const call = started.data!.startCall;
  expect(call).toMatchObject({ state: 'RINGING', media: 'AUDIO', initiator: { id: alice.id }, participants: [{ user: { id: alice.id }, device: { id: a.sessionId } }] });
  for (const ringing of [b1, b2]) {
    const incoming = await ringing.next('INCOMING');
    expect(incoming.call).toMatchObject({ id: call.id, state: 'RINGING', ringing: true });
  }

  const callerPeer = webrtcPeer(a, call.id, peerOptions);
  callerPeer.attach();
  const callerChannel = callerPeer.call();
  // The OFFER named no device: it reaches both ringing devices.
  const offers = await Promise.all([b1.next('SIGNAL'), b2.next('SIGNAL')]);
  for (const offer of offers) expect(offer.signal).toMatchObject({ fromDeviceId: a.sessionId, kind: 'OFFER' });

  const answered = await execute(b1.connection, ANSWER_CALL, { id: call.id });
  expect(answered.data!.answerCall).toMatchObject({ state: 'ACTIVE', ringing: false });
  expect((await b2.next('ANSWERED_ELSEWHERE')).call).toMatchObject({ id: call.id, state: 'ACTIVE', ringing: false });
  expect((await a.next('STATE_CHANGED')).call.participants.map((p: any) => p.device.id)).toEqual([a.sessionId, b1.sessionId]);
  const second = await execute(b2.connection, ANSWER_CALL, { id: call.id });
  expect(codeOf(second)).toBe('CONFLICT');

  const calleePeer = webrtcPeer(b1, call.id, peerOptions);
  calleePeer.attach();
  await calleePeer.handle(offers[0]!.signal!);
  const [aliceSide, bobSide] = await Promise.all([callerChannel, calleePeer.channelOpened]);
  const heard = new Promise<string>((resolve) => bobSide.onMessage.subscribe((data) => resolve(String(data))));
  aliceSide.send('hello over WebRTC');
  expect(await heard).toBe('hello over WebRTC');
  expect(callerPeer.errors).toEqual([]);
  expect(calleePeer.errors).toEqual([]);
  const signalKinds = b1.received.filter((e) => e.type === 'SIGNAL').map((e) => e.signal!.kind);
  expect(signalKinds[0]).toBe('OFFER');
  expect(signalKinds).toContain('ICE_CANDIDATE');
  expect(a.received.some((e) => e.signal?.kind === 'ANSWER' && e.signal.fromDeviceId === b1.sessionId)).toBe(true);
  // B2 stopped at the offer: nothing for B1 reached it.
  expect(b2.received.filter((e) => e.type === 'SIGNAL')).toHaveLength(1);

  await settle(1_100); // a call of at least a second
  const ended = await execute(a.connection, END_CALL, { id: call.id });
  expect(ended.data!.endCall).toMatchObject({ state: 'ENDED', endReason: 'HANGUP' });
  expect(ended.data!.endCall.participants.every((p: any) => p.leftAt !== null)).toBe(true);
  expect((await b1.next('STATE_CHANGED', 5_000)).call.state).toBeDefined();

  const timeline = await gql(app, MESSAGE_CALL, { c: chatId }, { token: bob.accessToken });
  expect(timeline.data.chat.messages.edges[0].node).toEqual({
    kind: 'CALL',
    sender: { id: alice.id },
    call: { media: 'AUDIO', state: 'ENDED', endReason: 'HANGUP', durationSeconds: expect.any(Number) },
  });
  expect(timeline.data.chat.messages.edges[0].node.call.durationSeconds).toBeGreaterThanOrEqual(1);
  expect(timeline.data.chat.unreadCount).toBe(1);
  await Promise.all([callerPeer.close(), calleePeer.close()]);
  return { callerPeer, calleePeer, alice };
}

describe('a call between two WebRTC peers that signal through Kocmoc', () => {
  it('rings both of the callee’s devices, connects the one that answers, and records the call in the chat', async () => {
    const { callerPeer } = await callAndTalk({});
    expect(callerPeer.candidateTypes.has('host')).toBe(true);
  });

  it('connects through the real coturn with the credentials from iceServers (relay only)', async () => {
    const user = await registerUser(app);
    const servers = (await gql(app, ICE_SERVERS, {}, { token: user.accessToken })).data.iceServers;
    const relay = servers.find((s: any) => s.username);
    expect(relay.urls).toEqual([`turn:127.0.0.1:${turn.port}?transport=udp`]);
    const before = turn.allocations();
    const { callerPeer, calleePeer } = await callAndTalk({ iceServers: servers, iceTransportPolicy: 'relay' });
    expect([...callerPeer.candidateTypes]).toEqual(['relay']);
    expect([...calleePeer.candidateTypes]).toEqual(['relay']);
    expect(turn.allocations()).toBeGreaterThanOrEqual(before + 2);
  });

  it('gets no relay from coturn with a credential signed by another secret', async () => {
    const user = await registerUser(app);
    const servers = (await gql(app, ICE_SERVERS, {}, { token: user.accessToken })).data.iceServers;
    const relay = servers.find((s: any) => s.username);
    const peer = webrtcPeer({ sessionId: 'x' } as CallDevice, 'x', {
      iceServers: [{ ...relay, credential: Buffer.from('forged credential').toString('base64') }],
      iceTransportPolicy: 'relay',
    });
    peer.pc.createDataChannel('probe');
    void peer.pc.setLocalDescription(await peer.pc.createOffer()).catch(() => {});
    for (let i = 0; i < 50 && turn.unauthorized() === 0; i++) await settle(100);
    expect(turn.unauthorized()).toBeGreaterThan(0);
    expect(peer.candidateTypes.has('relay')).toBe(false);
    void peer.close();
  });
});
