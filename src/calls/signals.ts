// WebRTC signalling: offers, answers and ICE candidates relayed from one device of a call to
// another, as SIGNAL events, in the order each device sent them. The payload is never read: in an
// end-to-end encrypted chat it is ciphertext, relayed as is.
import type { Viewer } from '../auth/authenticate.ts';
import { badUserInput, forbidden, notFound, rateLimited } from '../errors.ts';
import { publishCallEvent, type CallTopicEvent } from './events.ts';
import { SIGNAL_PAYLOAD_MAX_BYTES, type CallSignalInput } from './signals-input.ts';
import { CALL_NOT_FOUND, type CallServices } from './state.ts';

/**
 * Relays one signal. Devices in the call signal each other; before a member answers, the caller's
 * device may also signal that member's (ringing) devices, and its OFFER may name no device: it then
 * reaches every ringing device. Anything else is FORBIDDEN.
 */
export function sendCallSignal(services: CallServices, viewer: Viewer, input: CallSignalInput): Promise<void> {
  const callId = String(input.callId);
  const payloadBytes = Buffer.byteLength(input.payload, 'utf8');
  if (payloadBytes === 0) throw badUserInput('input.payload', 'A signal needs a payload.');
  if (payloadBytes > SIGNAL_PAYLOAD_MAX_BYTES) throw badUserInput('input.payload', `A signal payload is at most ${SIGNAL_PAYLOAD_MAX_BYTES} bytes.`);
  const toDeviceId = input.toDeviceId == null ? null : String(input.toDeviceId);
  if (toDeviceId === viewer.sessionId) throw badUserInput('input.toDeviceId', 'A device cannot signal itself.');
  const limit = services.calls.allowSignal(callId);
  if (!limit.allowed) throw rateLimited('Too many signals in this call: slow down.', limit.retryAfterSeconds);
  // Entered before any await: signals of one device leave in the order they came in.
  return services.calls.inOrder(`${callId}:${viewer.sessionId}`, () => relay(services, viewer, callId, toDeviceId, input));
}

interface SignalFacts {
  state: 'RINGING' | 'ACTIVE' | 'ENDED';
  initiatorSessionId: string;
  members: Array<{ userId: string; ring: string }>;
  participants: Array<{ userId: string; sessionId: string }>;
}

/**
 * What a signal's checks need, in one flat statement: a call's set-up sends dozens of signals, and
 * a nested Prisma read would cost a transaction and a query per relation for each.
 */
async function loadForSignal({ prisma }: CallServices, callId: string): Promise<SignalFacts | undefined> {
  const rows = await prisma.$queryRaw<SignalFacts[]>`
    SELECT c."state"::text AS "state", c."initiatorSessionId",
           coalesce((SELECT json_agg(json_build_object('userId', m."userId", 'ring', m."ring"))
                     FROM "CallMember" m WHERE m."callId" = c."id"), '[]') AS "members",
           coalesce((SELECT json_agg(json_build_object('userId', p."userId", 'sessionId', p."sessionId"))
                     FROM "CallParticipant" p WHERE p."callId" = c."id" AND p."leftAt" IS NULL), '[]') AS "participants"
    FROM "Call" c WHERE c."id" = ${callId}`;
  return rows[0];
}

async function relay(services: CallServices, viewer: Viewer, callId: string, toDeviceId: string | null, input: CallSignalInput) {
  const { prisma, events } = services;
  const call = await loadForSignal(services, callId);
  if (!call?.members.some((m) => m.userId === viewer.userId)) throw notFound(CALL_NOT_FOUND);
  if (call.state === 'ENDED') throw forbidden('The call has ended.');
  if (!call.participants.some((p) => p.sessionId === viewer.sessionId)) throw forbidden('Only devices in the call can signal: answer it first.');
  const fromCaller = viewer.sessionId === call.initiatorSessionId;
  const ringing = fromCaller ? call.members.filter((m) => m.ring === 'RINGING').map((m) => m.userId) : [];
  const event: CallTopicEvent = { type: 'SIGNAL', callId, signal: { fromDeviceId: viewer.sessionId, kind: input.kind, payload: input.payload } };

  if (toDeviceId === null) {
    if (input.kind !== 'OFFER' || ringing.length === 0) {
      throw badUserInput('input.toDeviceId', 'Name the device: only the caller’s OFFER to devices still ringing may leave it out.');
    }
    await publishCallEvent(events.bus, ringing, event);
    return;
  }
  const target = call.participants.find((p) => p.sessionId === toDeviceId);
  if (target) {
    await publishCallEvent(events.bus, [target.userId], { ...event, onlySessionIds: [toDeviceId] });
    return;
  }
  const ringingDevice =
    ringing.length > 0 &&
    (await prisma.session.findFirst({
      where: { id: toDeviceId, userId: { in: ringing }, revokedAt: null, expiresAt: { gt: new Date() } },
      select: { userId: true },
    }));
  if (!ringingDevice) throw forbidden('That device is not in this call.');
  await publishCallEvent(events.bus, [ringingDevice.userId], { ...event, onlySessionIds: [toDeviceId] });
}
