// Voice calls in direct chats, one at a time. The sound goes straight between the two browsers
// (WebRTC, DTLS-SRTP); Kocmoc carries the signalling: startCall, answerCall, declineCall and
// endCall, the offer, answer and ICE candidates through sendCallSignal, and the callEvents
// subscription, which rings this device and brings the other device's signals.
//
// The flow (README "Calls"): the caller makes its offer before startCall and sends it at once to
// every ringing device; the device that answers replies with its answer, and both trickle ICE
// candidates to each other. A device that opened the page while the call already rang missed
// that offer, so when the call goes ACTIVE the caller sends it again, to the device that answered
// (which ignores it if it had it). Group calls (a mesh of connections) are not in this client.
import { request } from './api.ts';
import { AnswerCallMutation, CallQuery, CallEventsSubscription, DeclineCallMutation, EndCallMutation, IceServersQuery, SendCallSignalMutation, StartCallMutation, type Call, type User } from '@kocmoc/client/documents';
import { callDuration, displayName } from './format.ts';
import type { ResultOf, VariablesOf } from '@kocmoc/client/documents';
import { live } from './live.ts';
import { startRingtone, stopRingtone } from './ringtone.ts';
import { accessToken } from './session.ts';
import { ApiError, run } from './transport.ts';

/** What the call screens show. */
export interface CallView {
  /** Null while startCall is on its way. */
  id: string | null;
  chatId: string;
  /** The other person. */
  peerName: string;
  /** ringing: it rings here; calling: we called, nobody answered yet. */
  phase: 'ringing' | 'calling' | 'connecting' | 'connected' | 'ended';
  /** When it was answered (by this clock), for the timer. */
  answeredAt?: number;
  /** Once ended, how, in words: "Call ended, 2 min", "No answer", "Declined". */
  outcome?: string;
}

type SignalKind = VariablesOf<typeof SendCallSignalMutation>['input']['kind'];
type CallEvent = ResultOf<typeof CallEventsSubscription>['callEvents'];

interface Current {
  view: CallView;
  outgoing: boolean;
  local?: MediaStream;
  pc?: RTCPeerConnection;
  audio: HTMLAudioElement;
  /** The other device (its session id): where signals go. */
  remoteDevice?: string;
  /** Our ICE candidates, until we know the other device. */
  heldCandidates: string[];
  /** Theirs, until their description is set. */
  earlyCandidates: RTCIceCandidateInit[];
  /** Signals go one after the other (the server relays them in the order it gets them)... */
  outbox: Promise<unknown>;
  /** ...and are handled in the order they came. */
  inbox: Promise<unknown>;
  /** In the call on the server (started, or answered here): signals may go both ways. */
  joined: boolean;
  /** Signals that came before that (the caller's first candidates race our answerCall). */
  early: Signal[];
  /** Hung up while startCall was on its way: end the call once it exists. */
  hungUp: boolean;
  /** Ended here for a reason of ours ("Could not connect"), which the server's end does not replace. */
  failed: boolean;
}

interface Signal {
  from: string;
  kind: SignalKind;
  payload: string;
}

/** How long an ended call stays on screen. */
const ENDED_SHOWN_MS = 6_000;

let current: Current | undefined;
let me: User | undefined;
let report: (error: unknown) => void = () => {};
/** Offers of calls not on screen yet: one that came before its INCOMING, or theirs in a glare. */
const offers = new Map<string, Signal>();
const OFFERS_KEPT = 10;
const listeners = new Set<(view: CallView | null) => void>();

/** Called with the call on screen (null when there is none) now and at every change. */
export function onCallChange(listener: (view: CallView | null) => void): () => void {
  listeners.add(listener);
  listener(current?.view ?? null);
  return () => listeners.delete(listener);
}

function show(patch: Partial<CallView>) {
  if (!current) return;
  current.view = { ...current.view, ...patch };
  for (const listener of listeners) listener(current.view);
}

function clear() {
  current = undefined;
  for (const listener of listeners) listener(null);
}

/** Begins a call on screen, replacing an ended one still shown. */
function begin(view: CallView, outgoing: boolean): Current {
  const audio = new Audio();
  audio.autoplay = true;
  current = { view, outgoing, audio, heldCandidates: [], earlyCandidates: [], outbox: Promise.resolve(), inbox: Promise.resolve(), joined: false, early: [], hungUp: false, failed: false };
  show({});
  return current;
}

const busy = () => current !== undefined && current.view.phase !== 'ended';

/** Listens for calls while signed in. The returned function stops, dropping a call in progress. */
export function watchCalls(user: User, onError: (error: unknown) => void): () => void {
  me = user;
  report = onError;
  const stop = live(CallEventsSubscription, ({ callEvents }) => onEvent(callEvents), { variables: () => ({}), onResume: resync, onError });
  addEventListener('pagehide', hangUpOnLeave);
  return () => {
    stop();
    removeEventListener('pagehide', hangUpOnLeave);
    if (current) teardown(current);
    offers.clear();
    clear();
  };
}

function onEvent({ type, call, signal }: CallEvent) {
  if (call.chat.kind !== 'DIRECT') return;
  if (type === 'SIGNAL' && signal) return onSignal(call.id, { from: signal.fromDeviceId, kind: signal.kind, payload: signal.payload });
  if (type === 'INCOMING') return ring(call);
  if (current?.view.id !== call.id) return;
  if (type === 'ANSWERED_ELSEWHERE') return finish('Answered on another device');
  follow(current, call);
}

/** INCOMING (which may come twice for a call). While in a call here, it rings on the other devices only. */
function ring(call: Call) {
  if (busy() || !call.ringing || call.state === 'ENDED') return;
  begin({ id: call.id, chatId: call.chat.id, peerName: displayName(call.initiator), phase: 'ringing' }, false);
  startRingtone();
}

/** The call as the server has it now. */
function follow(c: Current, call: Call) {
  if (current !== c) return;
  if (call.state === 'ENDED') return c.failed ? undefined : finish(outcomeOf(c, call));
  if (c.view.phase === 'ended') return;
  // Declined here or on another device of ours, or answered on one (ANSWERED_ELSEWHERE says so).
  if (c.view.phase === 'ringing' && !call.ringing) return finish(null);
  if (call.state !== 'ACTIVE' || !c.outgoing) return;
  if (c.view.phase === 'calling') show({ phase: 'connecting', answeredAt: Date.now() });
  const answering = call.participants.find((p) => p.user.id !== me?.id && !p.leftAt);
  if (!answering || c.remoteDevice) return;
  setRemoteDevice(c, answering.device.id);
  // The answering device may have missed our first offer (it was not listening yet): again, to it.
  if (c.pc?.signalingState === 'have-local-offer') send(c, 'OFFER', JSON.stringify(c.pc.localDescription));
}

function outcomeOf(c: Current, call: Call): string {
  if (call.durationSeconds != null) return `Call ended, ${callDuration(call.durationSeconds)}`;
  if (!c.outgoing) return 'Missed call';
  const outcomes = { MISSED: 'No answer', DECLINED: 'Declined', BUSY: 'Busy', HANGUP: 'Call cancelled', FAILED: 'Call failed', ANSWERED_ELSEWHERE: 'Call ended' };
  return call.endReason ? outcomes[call.endReason] : 'Call ended';
}

/** Calls the other member of a direct chat. */
export async function placeCall(chatId: string, peerName: string): Promise<void> {
  if (busy()) return;
  const c = begin({ id: null, chatId, peerName, phase: 'calling' }, true);
  try {
    // The microphone and the offer first: nothing rings until this device can talk.
    if (!(await prepare(c))) return;
    await c.pc!.setLocalDescription(await c.pc!.createOffer());
    let call: Call;
    try {
      call = await start(chatId);
    } catch (error) {
      const callId = error instanceof ApiError && error.code === 'CONFLICT' ? error.extensions.callId : undefined;
      if (c.hungUp) return;
      if (typeof callId !== 'string') throw error;
      // The chat has a call already: both called at once (glare). Join theirs.
      c.pc!.close();
      c.outgoing = false;
      c.heldCandidates = [];
      c.view = { ...c.view, id: callId };
      return await join(c);
    }
    c.view.id = call.id;
    if (c.hungUp || current !== c) return void request(EndCallMutation, { callId: call.id }).catch(report);
    joined(c);
    if (call.state !== 'ENDED') send(c, 'OFFER', JSON.stringify(c.pc!.localDescription));
    follow(c, call);
  } catch (error) {
    if (current === c) finish(null);
    report(error);
  }
}

/** startCall, retried once (the same clientCallId, so never two calls) when the network failed. */
async function start(chatId: string): Promise<Call> {
  const input = { chatId, media: 'AUDIO' as const, clientCallId: globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}` };
  try {
    return (await request(StartCallMutation, { input })).startCall;
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'NETWORK') throw error;
    return (await request(StartCallMutation, { input })).startCall;
  }
}

/** Answers the call ringing here. */
export async function answer(): Promise<void> {
  const c = current;
  if (c?.view.phase !== 'ringing') return;
  stopRingtone();
  try {
    await join(c);
  } catch (error) {
    // Still ringing when it failed before answerCall (the microphone, say): try again, or decline.
    if (current === c && c.view.phase === 'ringing') startRingtone();
    else if (current === c) finish(null);
    report(error);
  }
}

/** Answers c's call on this device and answers its caller's offer. */
async function join(c: Current) {
  const callId = c.view.id!;
  // Before answerCall: its STATE_CHANGED (ringing no more) may come before its result.
  show({ phase: 'connecting' });
  try {
    if (!(await prepare(c))) return;
  } catch (error) {
    if (current === c && !c.outgoing) show({ phase: 'ringing' });
    throw error;
  }
  const { answerCall: call } = await request(AnswerCallMutation, { callId });
  if (current !== c) return;
  show({ answeredAt: Date.now() });
  joined(c);
  follow(c, call);
}

/** In the call on the server: the signals kept until now are handled, an offer kept before them first. */
function joined(c: Current) {
  c.joined = true;
  const offer = offers.get(c.view.id!);
  offers.delete(c.view.id!);
  for (const signal of [...(offer ? [offer] : []), ...c.early.splice(0)]) onSignal(c.view.id!, signal);
}

/** Stops the call ringing: on every device of ours. */
export async function decline(): Promise<void> {
  const c = current;
  if (c?.view.phase !== 'ringing' || !c.view.id) return;
  finish(null);
  await request(DeclineCallMutation, { callId: c.view.id }).catch(report);
}

/** Hangs up (or cancels the call before it is answered). */
export async function hangUp(outcome?: string): Promise<void> {
  const c = current;
  if (!c || c.view.phase === 'ended') return;
  c.hungUp = true;
  c.failed = outcome !== undefined;
  finish(outcome ?? 'Call ended');
  if (!c.view.id) return; // placeCall ends it once startCall answers
  try {
    follow(c, (await request(EndCallMutation, { callId: c.view.id })).endCall);
  } catch (error) {
    report(error);
  }
}

/** Takes the ended call off the screen. */
export function dismiss() {
  if (current?.view.phase === 'ended') clear();
}

/** The microphone, the ICE servers and the peer connection. False when the call ended meanwhile. */
async function prepare(c: Current): Promise<boolean> {
  if (!navigator.mediaDevices?.getUserMedia || typeof RTCPeerConnection === 'undefined') {
    throw new Error('Calls need a browser with WebRTC, on a secure connection (https or localhost).');
  }
  c.local ??= await navigator.mediaDevices.getUserMedia({ audio: true }).catch((error: unknown) => {
    const name = error instanceof DOMException ? error.name : '';
    if (name === 'NotAllowedError') throw new Error('Allow this page to use the microphone to make calls.');
    if (name === 'NotFoundError') throw new Error('No microphone was found.');
    throw error;
  });
  // Fresh credentials for each call: TURN's expire.
  const { iceServers } = await request(IceServersQuery, {});
  if (current !== c || c.view.phase === 'ended') {
    teardown(c);
    return false;
  }
  const pc = new RTCPeerConnection({
    iceServers: iceServers.map(({ urls, username, credential }) => ({ urls, ...(username ? { username } : {}), ...(credential ? { credential } : {}) })),
  });
  for (const track of c.local.getTracks()) pc.addTrack(track, c.local);
  pc.onicecandidate = ({ candidate }) => {
    if (!candidate?.candidate) return;
    const payload = JSON.stringify(candidate.toJSON());
    if (c.remoteDevice) send(c, 'ICE_CANDIDATE', payload);
    else c.heldCandidates.push(payload);
  };
  pc.ontrack = ({ streams, track }) => {
    c.audio.srcObject = streams[0] ?? new MediaStream([track]);
    void c.audio.play().catch(() => {}); // autoplay refused: the stats still flow, and a click plays it
  };
  pc.onconnectionstatechange = () => {
    if (current !== c || c.pc !== pc) return;
    const state = pc.connectionState;
    if (state === 'connected' && c.view.phase === 'connecting') show({ phase: 'connected' });
    if (state === 'disconnected' && c.view.phase === 'connected') show({ phase: 'connecting' }); // ICE may find its way back
    if (state === 'failed') void hangUp('Could not connect');
  };
  c.pc = pc;
  return true;
}

function setRemoteDevice(c: Current, device: string) {
  if (c.remoteDevice) return;
  c.remoteDevice = device;
  for (const payload of c.heldCandidates.splice(0)) send(c, 'ICE_CANDIDATE', payload);
}

function send(c: Current, kind: SignalKind, payload: string) {
  const input = { callId: c.view.id!, toDeviceId: c.remoteDevice ?? null, kind, payload };
  c.outbox = c.outbox
    .then(() => request(SendCallSignalMutation, { input }))
    .catch((error: unknown) => current === c && c.view.phase !== 'ended' && report(error));
}

function onSignal(callId: string, signal: Signal) {
  const c = current;
  if (c?.view.id !== callId) {
    if (signal.kind !== 'OFFER' && signal.kind !== 'RENEGOTIATE') return;
    offers.set(callId, signal);
    if (offers.size > OFFERS_KEPT) offers.delete(offers.keys().next().value!);
    return;
  }
  if (c.view.phase === 'ended') return;
  if (!c.joined || !c.pc) return void c.early.push(signal);
  const pc = c.pc;
  c.inbox = c.inbox.then(() => handle(c, pc, signal)).catch((error: unknown) => {
    console.warn('call signal', error);
    if (current === c) void hangUp('Could not connect');
  });
}

async function handle(c: Current, pc: RTCPeerConnection, { from, kind, payload }: Signal) {
  if ((c.remoteDevice && from !== c.remoteDevice) || pc.signalingState === 'closed') return;
  if (kind === 'ICE_CANDIDATE') {
    const candidate = JSON.parse(payload) as RTCIceCandidateInit;
    // One of an earlier negotiation is refused: nothing to do about it.
    if (pc.remoteDescription) await pc.addIceCandidate(candidate).catch(() => {});
    else c.earlyCandidates.push(candidate);
    return;
  }
  const description = JSON.parse(payload) as RTCSessionDescriptionInit;
  if (kind === 'ANSWER') {
    if (pc.signalingState !== 'have-local-offer') return; // a late copy
    setRemoteDevice(c, from);
    await pc.setRemoteDescription(description);
  } else {
    if (pc.remoteDescription?.sdp === description.sdp) return; // the caller's offer again
    setRemoteDevice(c, from);
    await pc.setRemoteDescription(description);
    await pc.setLocalDescription(await pc.createAnswer());
    send(c, 'ANSWER', JSON.stringify(pc.localDescription));
  }
  for (const candidate of c.earlyCandidates.splice(0)) await pc.addIceCandidate(candidate).catch(() => {});
}

/** Ends the call here: media off, and (with an outcome) the ended call on screen for a while. */
function finish(outcome: string | null) {
  const c = current;
  if (!c) return;
  stopRingtone();
  teardown(c);
  if (c.view.id) offers.delete(c.view.id);
  if (outcome === null) return clear();
  const first = c.view.phase !== 'ended';
  show({ phase: 'ended', outcome });
  if (first) setTimeout(() => current === c && clear(), ENDED_SHOWN_MS);
}

function teardown(c: Current) {
  c.pc?.close();
  for (const track of c.local?.getTracks() ?? []) track.stop();
  c.audio.srcObject = null;
}

/** After a reconnect: what became of the call meanwhile. */
function resync() {
  const c = current;
  if (!c?.view.id || c.view.phase === 'ended') return;
  request(CallQuery, { id: c.view.id }).then(({ call }) => follow(c, call), report);
}

/** Closing or reloading the page hangs up (else the other side would wait for our reconnect). */
function hangUpOnLeave() {
  const c = current;
  if (!c?.view.id || c.view.phase === 'ended' || c.view.phase === 'ringing') return;
  const callId = c.view.id;
  void accessToken()
    .then((token) => run(EndCallMutation, { callId }, token, { keepalive: true }))
    .catch(() => {});
}
