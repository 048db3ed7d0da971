// Starting, answering, declining and ending calls. Direct chats, and group chats of up to
// GROUP_CALL_MAX_MEMBERS members, where every pair of devices connects directly (a mesh).
import { z } from 'zod';
import type { Viewer } from '../auth/authenticate.ts';
import { requireMembership } from '../chats/membership.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { badUserInput, conflict, forbidden } from '../errors.ts';
import type { Call, CallMedia, CallRing } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import { parseInput } from '../validation.ts';
import { publishCallEvent } from './events.ts';
import { insertCallMessage } from './history.ts';
import { CALL_TRANSACTION, finishCall, leaveCall, withLockedCall, type CallChange, type CallServices, type LockedCall } from './state.ts';

/** A mesh of 8 devices is 28 connections, each sending and receiving every other's media. */
export const GROUP_CALL_MAX_MEMBERS = 8;
const CLIENT_CALL_ID_MAX_LENGTH = 64;

const clientCallIdSchema = z
  .string()
  .min(1, 'clientCallId cannot be empty.')
  .max(CLIENT_CALL_ID_MAX_LENGTH, `clientCallId must be at most ${CLIENT_CALL_ID_MAX_LENGTH} characters.`);

export interface StartCallInput {
  chatId: string | number;
  media: CallMedia;
  clientCallId?: string | null;
}

/** CONFLICT naming the chat's ongoing call: the client joins it (answerCall) instead. */
function ongoingCallConflict(callId: string) {
  const error = conflict('input.chatId', 'This chat already has a call ringing or in progress: join it.');
  error.extensions.callId = callId;
  return error;
}

async function earlierStart({ prisma }: CallServices, initiatorId: string, clientCallId: string, chatId: string) {
  const earlier = await prisma.call.findUnique({ where: { initiatorId_clientCallId: { initiatorId, clientCallId } } });
  if (earlier && earlier.chatId !== chatId) throw conflict('input.clientCallId', 'This clientCallId was already used for a call in another chat.');
  return earlier;
}

/** Who the new call rings: members who blocked the caller are silenced, a direct partner in another call is busy. */
async function planRinging({ prisma }: CallServices, viewer: Viewer, chatId: string, kind: 'DIRECT' | 'GROUP') {
  const members = await prisma.chatMember.findMany({ where: { chatId }, select: { userId: true } });
  const others = members.map((m) => m.userId).filter((id) => id !== viewer.userId);
  if (others.length === 0) throw badUserInput('input.chatId', 'There is nobody else in this chat to call.');
  if (kind === 'GROUP' && members.length > GROUP_CALL_MAX_MEMBERS) {
    throw badUserInput('input.chatId', `Group calls are for chats of up to ${GROUP_CALL_MAX_MEMBERS} members.`);
  }
  const blocks = await prisma.userBlock.findMany({
    where: { OR: [{ blockerId: viewer.userId, blockedId: { in: others } }, { blockerId: { in: others }, blockedId: viewer.userId }] },
    select: { blockerId: true },
  });
  if (kind === 'DIRECT' && blocks.some((b) => b.blockerId === viewer.userId)) throw forbidden('Unblock this user to call them.');
  const silenced = new Set(blocks.map((b) => b.blockerId).filter((id) => id !== viewer.userId));
  const partner = others[0]!;
  const busy =
    kind === 'DIRECT' &&
    !silenced.has(partner) &&
    (await prisma.callParticipant.count({ where: { userId: partner, leftAt: null, call: { state: { not: 'ENDED' }, chatId: { not: chatId } } } })) > 0;
  const ringOf = (userId: string): CallRing => (silenced.has(userId) ? 'SILENCED' : busy ? 'MISSED' : 'RINGING');
  return { others, busy, ringOf };
}

/**
 * Starts a call: the CALL message, the call and its first device commit together. One call per
 * chat rings or runs at a time (a unique index decides, on any instance): a second start is
 * CONFLICT with the ongoing call's id. With a clientCallId, a retry returns the first call.
 */
export async function startCall(services: CallServices, viewer: Viewer, input: StartCallInput): Promise<Call> {
  const { prisma, config } = services;
  const chatId = String(input.chatId);
  const clientCallId = input.clientCallId == null ? null : parseInput(clientCallIdSchema, input.clientCallId, 'input.clientCallId');
  if (clientCallId) {
    const earlier = await earlierStart(services, viewer.userId, clientCallId, chatId);
    if (earlier) return earlier;
  }
  const membership = await requireMembership(prisma, chatId, viewer.userId);
  const { others, busy, ringOf } = await planRinging(services, viewer, chatId, membership.chat.kind);

  const now = new Date();
  const callId = uuidv7();
  let created: { call: Call; message: { id: string; seq: number } };
  try {
    created = await prisma.$transaction(async (tx) => {
      const message = await insertCallMessage(tx, chatId, viewer.userId);
      const call = await tx.call.create({
        data: {
          id: callId,
          chatId,
          initiatorId: viewer.userId,
          initiatorSessionId: viewer.sessionId,
          media: input.media,
          clientCallId,
          startedAt: now,
          ringUntil: new Date(now.getTime() + config.calls.ringMs),
          messageId: message.id,
          ...(busy ? { state: 'ENDED', endedAt: now, endReason: 'BUSY' } : { ongoingChatId: chatId }),
        },
      });
      await tx.callMember.createMany({
        data: [
          { callId, userId: viewer.userId, ring: 'ANSWERED', sessionId: busy ? null : viewer.sessionId },
          ...others.map((userId) => ({ callId, userId, ring: ringOf(userId) })),
        ],
      });
      await tx.callParticipant.create({ data: { callId, userId: viewer.userId, sessionId: viewer.sessionId, joinedAt: now, leftAt: busy ? now : null } });
      return { call, message };
    }, CALL_TRANSACTION);
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const earlier = clientCallId && (await earlierStart(services, viewer.userId, clientCallId, chatId));
    if (earlier) return earlier;
    const ongoing = await prisma.call.findUnique({ where: { ongoingChatId: chatId }, select: { id: true } });
    if (ongoing) throw ongoingCallConflict(ongoing.id);
    throw error;
  }
  await announceStart(services, created.call, created.message, others.filter((id) => ringOf(id) === 'RINGING'), busy ? others : []);
  return created.call;
}

/** After a start commits: the timeline's message, INCOMING and pushes for those it rings, its deadlines. */
async function announceStart(services: CallServices, call: Call, message: { id: string; seq: number }, ringing: string[], missed: string[]) {
  const { events, notifications, config, calls, logger } = services;
  await events.message(call.chatId, 'CREATED', message);
  if (missed.length > 0 && config.push.enabled) await notifications.callMissed(call.id, missed);
  if (call.state === 'ENDED') return;
  // Each step on its own: a deadline that could not be scheduled is in the database (any instance's
  // next start schedules it again), and a lost event still leaves the push and the deadline.
  const attempt = async (what: string, step: () => Promise<unknown>) => {
    try {
      await step();
    } catch (error) {
      logger.warn({ err: error, callId: call.id }, `could not ${what}`);
    }
  };
  await attempt('schedule the ringing deadline', async () => {
    await calls.timers.schedule({ kind: 'ring', callId: call.id }, call.ringUntil);
    // Nobody rings (they blocked the caller): the call is declined, after a while a person might take.
    if (ringing.length === 0) await calls.timers.schedule({ kind: 'ring', callId: call.id }, silentDeclineAt(call));
  });
  if (ringing.length === 0) return;
  await attempt('announce a call', () => publishCallEvent(events.bus, ringing, { type: 'INCOMING', callId: call.id }));
  if (config.push.enabled) await notifications.callRinging(call.id);
}

/** Between a fifth and a half of the ringing time: no hint that nothing rang. */
function silentDeclineAt(call: Pick<Call, 'startedAt' | 'ringUntil'>): Date {
  const ringMs = call.ringUntil.getTime() - call.startedAt.getTime();
  return new Date(call.startedAt.getTime() + ringMs * (0.2 + Math.random() * 0.3));
}

const memberOf = (call: LockedCall, userId: string) => call.members.find((m) => m.userId === userId)!;
const reload = (services: CallServices, callId: string) => services.prisma.call.findUniqueOrThrow({ where: { id: callId } });

/**
 * Answers on this device. Of a user's devices the first to answer wins (the call's row lock
 * decides, on any instance): the others get ANSWERED_ELSEWHERE, and answering again is CONFLICT.
 * A member not in an active group call may join it late, or rejoin after leaving.
 */
export async function answerCall(services: CallServices, viewer: Viewer, callId: string): Promise<Call> {
  await withLockedCall(services, callId, viewer.userId, async (tx, call, effects) => {
    if (call.state === 'ENDED') throw conflict('callId', 'The call has ended.');
    const member = memberOf(call, viewer.userId);
    if (member.sessionId) {
      throw conflict('callId', member.sessionId === viewer.sessionId ? 'You are in this call already.' : 'You are in this call on another device.');
    }
    const joiningGroup = call.state === 'ACTIVE' && call.chat.kind === 'GROUP';
    if (member.ring !== 'RINGING' && !joiningGroup) throw conflict('callId', 'This call is not ringing for you.');
    const now = new Date();
    await tx.callMember.update({ where: { callId_userId: { callId, userId: viewer.userId } }, data: { ring: 'ANSWERED', sessionId: viewer.sessionId } });
    await tx.callParticipant.create({ data: { callId, userId: viewer.userId, sessionId: viewer.sessionId, joinedAt: now } });
    if (call.state === 'RINGING') {
      await tx.call.update({ where: { id: callId }, data: { state: 'ACTIVE', answeredAt: now } });
      effects.messageChanged = true;
    }
    effects.joined = { userId: viewer.userId, sessionId: viewer.sessionId, wasRinging: member.ring === 'RINGING' };
    member.ring = 'ANSWERED';
    effects.stateChanged = true;
  });
  return reload(services, callId);
}

/** Stops the viewer's ringing; a call nobody is left to answer ends DECLINED. */
async function decline(tx: Parameters<Parameters<typeof withLockedCall>[3]>[0], call: LockedCall, userId: string, effects: CallChange) {
  await tx.callMember.update({ where: { callId_userId: { callId: call.id, userId } }, data: { ring: 'DECLINED' } });
  memberOf(call, userId).ring = 'DECLINED';
  effects.stateChanged = true;
  if (call.state === 'RINGING' && !call.members.some((m) => m.ring === 'RINGING')) await finishCall(tx, call, 'DECLINED', effects);
}

export async function declineCall(services: CallServices, viewer: Viewer, callId: string): Promise<Call> {
  await withLockedCall(services, callId, viewer.userId, async (tx, call, effects) => {
    if (call.state === 'ENDED') throw conflict('callId', 'The call has ended.');
    if (call.initiatorId === viewer.userId) throw conflict('callId', 'You started this call: endCall hangs up.');
    if (memberOf(call, viewer.userId).ring !== 'RINGING') throw conflict('callId', 'This call is not ringing for you.');
    await decline(tx, call, viewer.userId, effects);
  });
  return reload(services, callId);
}

/**
 * Leaves the call (hangs up), from any of the viewer's devices: the call ends when fewer than two
 * devices remain, or at once when the caller hangs up before anyone answered. A member whose
 * devices still ring declines. Ending an ended call changes nothing.
 */
export async function endCall(services: CallServices, viewer: Viewer, callId: string): Promise<Call> {
  await withLockedCall(services, callId, viewer.userId, async (tx, call, effects) => {
    if (call.state === 'ENDED') return;
    const device = call.participants.find((p) => p.userId === viewer.userId);
    if (device) await leaveCall(tx, call, device, 'HANGUP', effects);
    else if (memberOf(call, viewer.userId).ring === 'RINGING') await decline(tx, call, viewer.userId, effects);
  });
  return reload(services, callId);
}
