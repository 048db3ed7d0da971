// Voice and video calls: WebRTC signalling over graphql-ws, ringing, TURN credentials, call history.
import { requireViewer } from '../auth/authenticate.ts';
import { answerCall, declineCall, endCall, GROUP_CALL_MAX_MEMBERS, startCall } from '../calls/calls.ts';
import type { CallTopicEvent, RelayedSignal } from '../calls/events.ts';
import { durationSeconds } from '../calls/history.ts';
import { sendCallSignal } from '../calls/signals.ts';
import { CALL_SIGNAL_KINDS, SIGNAL_PAYLOAD_MAX_BYTES } from '../calls/signals-input.ts';
import { CALL_NOT_FOUND } from '../calls/state.ts';
import { callEventStream } from '../calls/stream.ts';
import { iceServersFor, type IceServer } from '../calls/turn.ts';
import { notFound } from '../errors.ts';
import type { CallEndReason, CallMedia, CallState } from '../generated/prisma/enums.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';

const CallMediaEnum = builder.enumType('CallMedia', {
  description: 'What a call carries.',
  values: { AUDIO: { description: 'Voice only.' }, VIDEO: { description: 'Voice and video.' } } satisfies Record<CallMedia, unknown>,
});
const CallStateEnum = builder.enumType('CallState', {
  description: 'Where a call stands.',
  values: {
    RINGING: { description: 'Started; nobody answered yet.' },
    ACTIVE: { description: 'Answered: at least two devices are in it.' },
    ENDED: { description: 'Over: see endReason.' },
  } satisfies Record<CallState, unknown>,
});
const CallEndReasonEnum = builder.enumType('CallEndReason', {
  description:
    'Why a call ended. ANSWERED_ELSEWHERE is what a device that rang reports locally (as CallKit does) when another device of its user answered: the ANSWERED_ELSEWHERE event; the call itself goes on.',
  values: {
    HANGUP: { description: 'Someone hung up (endCall), or the last other device left.' },
    DECLINED: { description: 'Everyone it rang declined.' },
    MISSED: { description: 'Nobody answered before the ringing ended (CALL_RING_SECONDS).' },
    BUSY: { description: 'Nobody could take it: those it would ring were all in other calls.' },
    FAILED: { description: 'The devices lost each other: a stream dropped and did not come back within CALL_RECONNECT_SECONDS.' },
    ANSWERED_ELSEWHERE: { description: 'For a device that rang: another device of its user answered.' },
  } satisfies Record<CallEndReason, unknown>,
});
const CallSignalKindEnum = builder.enumType('CallSignalKind', {
  description: 'What a WebRTC signal is.',
  values: {
    OFFER: { description: 'An SDP offer.' },
    ANSWER: { description: 'An SDP answer.' },
    ICE_CANDIDATE: { description: 'An ICE candidate.' },
    RENEGOTIATE: { description: 'A new offer for a changed session (media added or removed).' },
  } satisfies Record<(typeof CALL_SIGNAL_KINDS)[number], unknown>,
});
const CallEventTypeEnum = builder.enumType('CallEventType', {
  description: 'What happened to the call.',
  values: {
    INCOMING: { description: 'A call rings this device.' },
    STATE_CHANGED: { description: 'The call was answered, declined, joined, left or ended, or stopped ringing for you.' },
    SIGNAL: { description: 'Another device of the call sent this device a signal.' },
    ANSWERED_ELSEWHERE: { description: 'Another device of yours answered: stop ringing.' },
  } as const,
});

const CallDeviceRef = builder.objectRef<{ id: string }>('CallDevice').implement({
  interfaces: [NodeRef],
  description:
    "A device in a call: its device session. node(id) answers it as a CallDevice to the call's members who may not see it as a Device or DeviceSession.",
  fields: (t) => ({ id: t.exposeID('id', { description: 'The device session id: where signals go (`toDeviceId`).' }) }),
});

builder.prismaObject('CallParticipant', {
  interfaces: [NodeRef],
  description: 'A device that is, or was, in a call.',
  fields: (t) => ({
    user: t.relation('user', { description: "The device's user." }),
    device: t.field({ type: CallDeviceRef, description: 'The device.', resolve: (participant) => ({ id: participant.sessionId }) }),
    joinedAt: t.expose('joinedAt', { type: 'DateTime', description: 'When it joined.' }),
    leftAt: t.expose('leftAt', { type: 'DateTime', nullable: true, description: 'Null while the device is in the call.' }),
  }),
});

builder.prismaObject('Call', {
  interfaces: [NodeRef],
  description: 'A voice or video call in a chat. Media flows between the devices (WebRTC); Kocmoc carries the signalling.',
  fields: (t) => ({
    chat: t.relation('chat', { description: 'The chat called.' }),
    initiator: t.relation('initiator', { description: 'Who called.' }),
    media: t.expose('media', { type: CallMediaEnum, description: 'Audio or video.' }),
    state: t.expose('state', { type: CallStateEnum, description: 'Where it stands.' }),
    participants: t.relation('participants', {
      description: 'Devices that joined (the caller’s first), including ones that left.',
      query: { orderBy: [{ joinedAt: 'asc' }, { id: 'asc' }] },
    }),
    startedAt: t.expose('startedAt', { type: 'DateTime', description: 'When it started ringing.' }),
    answeredAt: t.expose('answeredAt', { type: 'DateTime', nullable: true, description: 'When it was answered; null if not (yet).' }),
    endedAt: t.expose('endedAt', { type: 'DateTime', nullable: true, description: 'When it ended; null while it rings or runs.' }),
    endReason: t.expose('endReason', { type: CallEndReasonEnum, nullable: true, description: 'Why it ended; null until it does.' }),
    durationSeconds: t.int({
      nullable: true,
      description: 'From the answer to the end (so far, while it runs). Null if nobody answered.',
      select: { answeredAt: true, endedAt: true },
      resolve: (call) => durationSeconds(call),
    }),
    ringing: t.boolean({
      description: 'Whether your devices ring for this call now.',
      extensions: { viewerDependent: true },
      select: (_args, ctx) => ({ members: { where: { userId: ctx.viewer?.userId ?? '' }, select: { ring: true } } }),
      resolve: (call) => call.members[0]?.ring === 'RINGING',
    }),
  }),
});

const CallSignalRef = builder.objectRef<RelayedSignal>('CallSignal').implement({
  description: 'An offer, answer or ICE candidate from another device of the call, relayed as sent.',
  fields: (t) => ({
    fromDeviceId: t.exposeID('fromDeviceId', { description: 'The sending device: answer it with `toDeviceId` set to this.' }),
    kind: t.field({ type: CallSignalKindEnum, description: 'What it is.', resolve: (signal) => signal.kind }),
    payload: t.exposeString('payload', { description: 'As the sender sent it (ciphertext in end-to-end encrypted chats).' }),
  }),
});

/** Signals do not change the call: a set-up's dozens of them show one load of it, for a moment. */
const SIGNAL_CALL_REUSE_MS = 250;
const SIGNAL_CALLS_MAX = 2_000;
const signalCalls = new Map<string, { until: number; call: Promise<unknown> }>();

function callShownWithSignals<T>(callId: string, viewerId: string, query: unknown, load: () => Promise<T>): Promise<T> {
  const key = `${callId}\u0000${viewerId}\u0000${JSON.stringify(query)}`;
  const now = Date.now();
  const recent = signalCalls.get(key);
  if (recent && recent.until > now) return recent.call as Promise<T>;
  if (signalCalls.size >= SIGNAL_CALLS_MAX) for (const [k, v] of signalCalls) if (v.until <= now || signalCalls.size >= SIGNAL_CALLS_MAX) signalCalls.delete(k);
  const call = load();
  signalCalls.set(key, { until: now + SIGNAL_CALL_REUSE_MS, call });
  call.catch(() => signalCalls.delete(key));
  return call;
}

const CallEventRef = builder.objectRef<CallTopicEvent>('CallEvent').implement({
  description: 'Something happened to a call that concerns this device.',
  fields: (t) => ({
    type: t.field({ type: CallEventTypeEnum, description: 'What happened.', resolve: (event) => event.type }),
    callId: t.id({ description: 'The call.', resolve: (event) => event.callId }),
    call: t.prismaField({
      type: 'Call',
      description: 'The call as it is now (with a SIGNAL, as it was up to a quarter of a second ago).',
      resolve: (query, event, _args, ctx) => {
        const load = () => ctx.prisma.call.findUniqueOrThrow({ ...query, where: { id: event.callId } });
        return event.type === 'SIGNAL' ? callShownWithSignals(event.callId, ctx.viewer?.userId ?? '', query, load) : load();
      },
    }),
    signal: t.field({ type: CallSignalRef, nullable: true, description: 'For SIGNAL events.', resolve: (event) => event.signal ?? null }),
  }),
});

const IceServerRef = builder.objectRef<IceServer>('IceServer').implement({
  description: 'A STUN or TURN server for RTCPeerConnection’s `iceServers`.',
  fields: (t) => ({
    urls: t.exposeStringList('urls', { description: 'The server\'s `stun:`/`turn:`/`turns:` URLs.' }),
    username: t.exposeString('username', { nullable: true, description: 'TURN: `<expiry>:<userId>`.' }),
    credential: t.exposeString('credential', { nullable: true, description: 'TURN: valid until the expiry in `username` (TURN_CREDENTIAL_TTL).' }),
  }),
});

const StartCallInput = builder.inputType('StartCallInput', {
  description: 'A call to start.',
  fields: (t) => ({
    chatId: t.id({ required: true, description: `A direct chat, or a group of up to ${GROUP_CALL_MAX_MEMBERS} members.` }),
    media: t.field({ type: CallMediaEnum, required: true, description: 'Audio or video.' }),
    clientCallId: t.string({ required: false, description: 'Your id for this start (up to 64 characters): retrying with it returns the first call.' }),
  }),
});

const CallSignalInput = builder.inputType('CallSignalInput', {
  description: 'A WebRTC signal for other devices of a call.',
  fields: (t) => ({
    callId: t.id({ required: true, description: 'The call.' }),
    toDeviceId: t.id({ required: false, description: 'The receiving device. Only the caller’s OFFER to devices still ringing may leave it out.' }),
    kind: t.field({ type: CallSignalKindEnum, required: true, description: 'What it is.' }),
    payload: t.string({ required: true, description: `SDP or ICE candidate (JSON, say), at most ${SIGNAL_PAYLOAD_MAX_BYTES / 1024} KiB. Relayed as is.` }),
  }),
});

builder.queryFields((t) => ({
  call: t.prismaField({
    type: 'Call',
    description: 'A call that rang you or that you started.',
    args: { id: t.arg.id({ required: true, description: 'The call\'s id.' }) },
    resolve: async (query, _root, args, ctx) => {
      const { userId } = requireViewer(ctx);
      const call = await ctx.prisma.call.findFirst({ ...query, where: { id: String(args.id), members: { some: { userId } } } });
      if (!call) throw notFound(CALL_NOT_FOUND);
      return call;
    },
  }),
  iceServers: t.field({
    type: [IceServerRef],
    description: 'STUN/TURN servers for calls, with TURN credentials for a while (TURN_CREDENTIAL_TTL). Empty when none are configured: calls then connect only peers that reach each other directly.',
    resolve: (_root, _args, ctx) => iceServersFor(ctx.config.calls.turn, requireViewer(ctx).userId),
  }),
}));

type MutationFieldBuilder = Parameters<Parameters<typeof builder.mutationFields>[0]>[0];

/** A mutation of one call by its id, answering the call as it is afterwards. */
const callMutation = (t: MutationFieldBuilder, description: string, change: typeof answerCall) =>
  t.prismaField({
    type: 'Call',
    description,
    args: { callId: t.arg.id({ required: true, description: 'The call\'s id.' }) },
    resolve: async (query, _root, args, ctx) => {
      const call = await change(ctx, requireViewer(ctx), String(args.callId));
      return ctx.prisma.call.findUniqueOrThrow({ ...query, where: { id: call.id } });
    },
  });

builder.mutationFields((t) => ({
  startCall: t.prismaField({
    type: 'Call',
    description: 'Calls the other members of a chat: every device of theirs rings. CONFLICT (with `extensions.callId`) when the chat already has a call: join that one.',
    args: { input: t.arg({ type: StartCallInput, required: true, description: 'The chat to call and the media.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const call = await startCall(ctx, requireViewer(ctx), input);
      return ctx.prisma.call.findUniqueOrThrow({ ...query, where: { id: call.id } });
    },
  }),
  answerCall: callMutation(t, 'Answers on this device (the first of your devices to answer wins; again is CONFLICT), or joins an active group call.', answerCall),
  declineCall: callMutation(t, 'Stops your devices ringing. A call nobody is left to answer ends DECLINED.', declineCall),
  endCall: callMutation(
    t,
    'Hangs up (leaves the call). It ends when fewer than two devices remain, or when the caller hangs up before an answer.',
    endCall,
  ),
  sendCallSignal: t.boolean({
    description: 'Relays an offer, answer or ICE candidate to another device of the call (a SIGNAL event there), in the order sent.',
    args: { input: t.arg({ type: CallSignalInput, required: true, description: 'The signal and where it goes.' }) },
    resolve: async (_root, { input }, ctx) => {
      await sendCallSignal(ctx, requireViewer(ctx), input);
      return true;
    },
  }),
}));

builder.subscriptionFields((t) => ({
  callEvents: t.field({
    type: CallEventRef,
    description: `Calls ringing this device, their changes, and signals for it. Keep it open during a call: a device whose stream drops leaves with FAILED unless it subscribes again within CALL_RECONNECT_SECONDS (default 20).`,
    subscribe: (_root, _args, ctx) => callEventStream(ctx, requireViewer(ctx)),
    resolve: (event) => event,
  }),
}));
