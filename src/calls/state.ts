// How a call changes state. Every change locks the call's row first (one transaction per change),
// so of two devices answering at once, or an answer racing the ringing deadline, one goes first
// and the other sees its result, on whichever instances they run. What the change means for
// others (events, pushes, timers) is collected as a CallChange and published after the commit.
import type { CallEndReason, CallMember, CallParticipant, Prisma } from '../generated/prisma/client.ts';
import { notFound } from '../errors.ts';
import type { Services } from '../services.ts';
import { publishCallEvent, type CallEventType } from './events.ts';

export type CallServices = Pick<Services, 'prisma' | 'events' | 'notifications' | 'config' | 'calls' | 'rateLimits' | 'logger'>;
type Tx = Prisma.TransactionClient;

export const CALL_NOT_FOUND = 'Call';

/** Under load a call's transaction may wait for a pooled connection; it never holds one long. */
export const CALL_TRANSACTION = { maxWait: 10_000, timeout: 20_000 } as const;

async function loadLocked(tx: Tx, callId: string) {
  const locked = await tx.$queryRaw<Array<{ id: string }>>`SELECT "id" FROM "Call" WHERE "id" = ${callId} FOR UPDATE`;
  if (locked.length === 0) return null;
  // One query after another: a transaction's connection runs one at a time.
  const call = await tx.call.findUniqueOrThrow({ where: { id: callId } });
  const chat = await tx.chat.findUniqueOrThrow({ where: { id: call.chatId }, select: { kind: true } });
  const members = await tx.callMember.findMany({ where: { callId } });
  const participants = await tx.callParticipant.findMany({ where: { callId, leftAt: null }, orderBy: { joinedAt: 'asc' } });
  const message = call.messageId ? await tx.message.findUnique({ where: { id: call.messageId }, select: { id: true, seq: true } }) : null;
  return { ...call, chat, members, participants, message };
}

/** A call under its row lock: `participants` are the devices still in it. */
export type LockedCall = NonNullable<Awaited<ReturnType<typeof loadLocked>>>;

/** What others learn of a change, once it is committed. */
export interface CallChange {
  /** Users whose devices ring now: INCOMING, and a push. */
  incoming: string[];
  /** STATE_CHANGED goes to everyone the call concerns (never to members who silenced the caller). */
  stateChanged: boolean;
  /** The device that joined: its stream starts speaking for it, and its user's other devices stop ringing. */
  joined?: { userId: string; sessionId: string; wasRinging: boolean };
  /** Members whose ringing stopped unanswered: a "missed call" push. */
  missed: string[];
  /** The chat's CALL message shows a new state. */
  messageChanged: boolean;
}

export const noChange = (): CallChange => ({ incoming: [], stateChanged: false, missed: [], messageChanged: false });

/** The users who hear about the call: the caller and every member who did not silence them. */
export const audienceOf = (members: Pick<CallMember, 'userId' | 'ring'>[]) => members.filter((m) => m.ring !== 'SILENCED').map((m) => m.userId);

/**
 * Runs `change` on the locked call in one transaction, then publishes what it changed. With a
 * `viewerId`, the call must concern them (the caller or a member it rang), else NOT_FOUND.
 */
export async function withLockedCall<T>(
  services: CallServices,
  callId: string,
  viewerId: string | null,
  change: (tx: Tx, call: LockedCall, effects: CallChange) => Promise<T>,
): Promise<T> {
  const effects = noChange();
  let locked: LockedCall | undefined;
  const result = await services.prisma.$transaction(
    async (tx) => {
      const call = await loadLocked(tx, callId);
      if (!call || (viewerId && !call.members.some((m) => m.userId === viewerId))) throw notFound(CALL_NOT_FOUND);
      locked = call;
      return change(tx, call, effects);
    },
    CALL_TRANSACTION,
  );
  services.calls.forgetCall(callId);
  if (locked) await publishChange(services, locked, effects);
  return result;
}

/** Ends the call: every device leaves, members still ringing missed it. */
export async function finishCall(tx: Tx, call: LockedCall, reason: CallEndReason, effects: CallChange, now = new Date()) {
  await tx.call.update({ where: { id: call.id }, data: { state: 'ENDED', endedAt: now, endReason: reason, ongoingChatId: null } });
  await tx.callParticipant.updateMany({ where: { callId: call.id, leftAt: null }, data: { leftAt: now } });
  await stopRinging(tx, call, effects);
  await tx.callMember.updateMany({ where: { callId: call.id, sessionId: { not: null } }, data: { sessionId: null } });
  call.state = 'ENDED';
  effects.stateChanged = true;
  effects.messageChanged = true;
}

/** Members still ringing missed the call (it ended, or ringing timed out in a group call that goes on). */
export async function stopRinging(tx: Tx, call: LockedCall, effects: CallChange) {
  const ringing = call.members.filter((m) => m.ring === 'RINGING');
  if (ringing.length === 0) return;
  await tx.callMember.updateMany({ where: { callId: call.id, ring: 'RINGING' }, data: { ring: 'MISSED' } });
  for (const member of ringing) member.ring = 'MISSED';
  effects.missed.push(...ringing.map((m) => m.userId));
  effects.stateChanged = true;
}

/**
 * One device leaves. The call ends (with `reason`) when fewer than two devices remain, or when the
 * caller leaves before anyone answered.
 */
export async function leaveCall(tx: Tx, call: LockedCall, participant: CallParticipant, reason: CallEndReason, effects: CallChange) {
  const now = new Date();
  await tx.callParticipant.update({ where: { id: participant.id }, data: { leftAt: now } });
  await tx.callMember.updateMany({ where: { callId: call.id, userId: participant.userId, sessionId: participant.sessionId }, data: { sessionId: null } });
  const remaining = call.participants.filter((p) => p.id !== participant.id);
  call.participants = remaining;
  effects.stateChanged = true;
  if (call.state === 'RINGING' || remaining.length < 2) await finishCall(tx, call, reason, effects, now);
}

/** Events, pushes and timers of a committed change. Never throws: the change itself is done. */
async function publishChange(services: CallServices, call: LockedCall, effects: CallChange) {
  const { events, logger, notifications, config } = services;
  const publish = (userIds: string[], type: CallEventType, extra: Partial<Parameters<typeof publishCallEvent>[2]> = {}) =>
    publishCallEvent(events.bus, userIds, { type, callId: call.id, ...extra });
  try {
    const { joined } = effects;
    if (effects.incoming.length > 0) await publish(effects.incoming, 'INCOMING');
    if (joined?.wasRinging) await publish([joined.userId], 'ANSWERED_ELSEWHERE', { exceptSessionId: joined.sessionId });
    if (effects.stateChanged) await publish(audienceOf(call.members), 'STATE_CHANGED', joined ? { joinedSessionId: joined.sessionId } : {});
  } catch (error) {
    logger.warn({ err: error, callId: call.id }, 'could not publish a call event');
  }
  if (effects.messageChanged && call.message) await events.message(call.chatId, 'EDITED', call.message);
  if (!config.push.enabled) return;
  if (effects.joined?.wasRinging) await notifications.callAnsweredElsewhere(call.id, effects.joined.userId, effects.joined.sessionId);
  if (effects.missed.length > 0) await notifications.callMissed(call.id, effects.missed);
}
