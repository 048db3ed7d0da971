// WebRTC signalling: offers, answers and ICE candidates relayed from one device of a call to
// another, as SIGNAL events, in the order each device sent them. The payload is never read: in an
// end-to-end encrypted chat it is ciphertext, relayed as is.
import type { Viewer } from '../auth/authenticate.ts';
import { badUserInput, forbidden, notFound } from '../errors.ts';
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
  // Entered before any await: signals of one device leave in the order they came in (the limit is
  // counted in that order too, so a refusal never overtakes an earlier signal).
  return services.calls.inOrder(`${callId}:${viewer.sessionId}`, async () => {
    await services.rateLimits.consume('callSignals', callId);
    return relay(services, viewer, callId, toDeviceId, input);
  });
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

/** Where a signal goes: users (and their devices), or a ringing device still to look up; or why not. */
type Route = { userIds: string[]; onlySessionIds?: string[] } | { ringingDevice: string; ringingUsers: string[] } | Error;

function routeOf(call: SignalFacts | undefined, viewer: Viewer, toDeviceId: string | null, kind: CallSignalInput['kind']): Route {
  if (!call?.members.some((m) => m.userId === viewer.userId)) return notFound(CALL_NOT_FOUND);
  if (call.state === 'ENDED') return forbidden('The call has ended.');
  if (!call.participants.some((p) => p.sessionId === viewer.sessionId)) return forbidden('Only devices in the call can signal: answer it first.');
  const fromCaller = viewer.sessionId === call.initiatorSessionId;
  const ringing = fromCaller ? call.members.filter((m) => m.ring === 'RINGING').map((m) => m.userId) : [];
  if (toDeviceId === null) {
    if (kind !== 'OFFER' || ringing.length === 0) {
      return badUserInput('input.toDeviceId', 'Name the device: only the caller’s OFFER to devices still ringing may leave it out.');
    }
    return { userIds: ringing };
  }
  const target = call.participants.find((p) => p.sessionId === toDeviceId);
  if (target) return { userIds: [target.userId], onlySessionIds: [toDeviceId] };
  if (ringing.length === 0) return forbidden('That device is not in this call.');
  return { ringingDevice: toDeviceId, ringingUsers: ringing };
}

/** The user of a live device session of one of `userIds`, if `sessionId` is one. */
async function ringingDeviceUser({ prisma }: CallServices, sessionId: string, userIds: string[]) {
  const session = await prisma.session.findFirst({
    where: { id: sessionId, userId: { in: userIds }, revokedAt: null, expiresAt: { gt: new Date() } },
    select: { userId: true },
  });
  return session?.userId;
}

/**
 * Routes with the call as this instance read it a moment ago (calls/runtime.ts keeps it briefly, and
 * forgets it when the call changes here); a refusal is decided again on a fresh read, so a device
 * that just joined on another instance is never refused. What a stale read can do is relay, for at
 * most that moment, a signal of a device that just left.
 */
async function relay(services: CallServices, viewer: Viewer, callId: string, toDeviceId: string | null, input: CallSignalInput) {
  const { calls, events } = services;
  const load = () => loadForSignal(services, callId);
  let fresh = false;
  let route = routeOf(await calls.signalFacts(callId, load), viewer, toDeviceId, input.kind);
  for (;;) {
    let userIds: string[] | undefined;
    let onlySessionIds: string[] | undefined;
    if (!(route instanceof Error) && 'ringingDevice' in route) {
      const userId = await ringingDeviceUser(services, route.ringingDevice, route.ringingUsers);
      if (userId) [userIds, onlySessionIds] = [[userId], [route.ringingDevice]];
      else route = forbidden('That device is not in this call.');
    } else if (!(route instanceof Error)) {
      [userIds, onlySessionIds] = [route.userIds, route.onlySessionIds];
    }
    if (userIds) {
      const signal = { fromDeviceId: viewer.sessionId, kind: input.kind, payload: input.payload };
      await publishCallEvent(events.bus, userIds, { type: 'SIGNAL', callId, signal, ...(onlySessionIds ? { onlySessionIds } : {}) } satisfies CallTopicEvent);
      return;
    }
    if (fresh) throw route;
    fresh = true;
    calls.forgetCall(callId);
    route = routeOf(await calls.signalFacts(callId, load), viewer, toDeviceId, input.kind);
  }
}
