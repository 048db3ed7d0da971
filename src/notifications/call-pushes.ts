// Pushes for calls: "incoming call" to every device of every member it rings (muted chats too:
// a call is not a message), with Urgency high, a 30 s TTL and the call as Topic; "answered on
// another device" to the other devices of a member who answered, so a device that rang only
// through a push stops ringing too; and "missed call" once ringing stopped unanswered. All under
// the same Topic, so each replaces the one before that a device has not received yet. Same queue,
// retries and job-id idempotency as message pushes.
import { sendToSubscription, type NotificationDeps } from './jobs.ts';

export type CallPushEvent = 'incoming' | 'answered-elsewhere' | 'missed';

export interface CallFanOutJob {
  callId: string;
  event: CallPushEvent;
  /** The members concerned (a group call's members can miss it at different times); all it rings when absent. */
  userIds?: string[];
  /** Not to this device session's subscriptions (the one that answered). */
  exceptSessionId?: string;
}

export interface CallDeliveryJob {
  callId: string;
  event: CallPushEvent;
  subscriptionId: string;
}

/** A ringing push is useless once the call is answered or over: the push service drops it after this. */
export const RINGING_PUSH_TTL_SECONDS = 30;
const MISSED_PUSH_TTL_SECONDS = 24 * 3600;

/** RFC 8030 Topic of a call's pushes: its id without the dashes (32 characters, URL-safe). */
export const callTopic = (callId: string) => callId.replaceAll('-', '');

export type CallPushDeps = Pick<NotificationDeps, 'prisma' | 'send'> & {
  enqueueCallDeliveries(jobs: CallDeliveryJob[]): Promise<void>;
};

/** One delivery job per registered device of the members concerned (live sessions only). */
/** Where a member must stand for each push to still make sense when it is sent. */
const RING_OF_EVENT = { incoming: 'RINGING', 'answered-elsewhere': 'ANSWERED', missed: 'MISSED' } as const;

const TEXT_OF_EVENT = { incoming: 'Incoming', 'answered-elsewhere': 'Answered on another device:', missed: 'Missed' } as const;

export async function fanOutCallPush(deps: CallPushDeps, job: CallFanOutJob): Promise<number> {
  const ring = RING_OF_EVENT[job.event];
  const members = await deps.prisma.callMember.findMany({
    where: { callId: job.callId, ring, ...(job.userIds ? { userId: { in: job.userIds } } : {}) },
    select: { userId: true },
  });
  if (members.length === 0) return 0;
  const subscriptions = await deps.prisma.pushSubscription.findMany({
    where: {
      userId: { in: members.map((m) => m.userId) },
      session: { revokedAt: null, expiresAt: { gt: new Date() } },
      ...(job.exceptSessionId ? { sessionId: { not: job.exceptSessionId } } : {}),
    },
    select: { id: true },
  });
  await deps.enqueueCallDeliveries(subscriptions.map((s) => ({ callId: job.callId, event: job.event, subscriptionId: s.id })));
  return subscriptions.length;
}

export async function deliverCallPush(deps: CallPushDeps, job: CallDeliveryJob): Promise<'sent' | 'gone' | 'skipped'> {
  const { prisma } = deps;
  const subscription = await prisma.pushSubscription.findUnique({ where: { id: job.subscriptionId } });
  if (!subscription) return 'gone';
  const call = await prisma.call.findUnique({
    where: { id: job.callId },
    include: {
      chat: { select: { kind: true, title: true } },
      initiator: { select: { displayName: true } },
      members: { where: { userId: subscription.userId }, select: { ring: true } },
    },
  });
  const ring = call?.members[0]?.ring;
  // An incoming-call push that is late (answered, declined, over) would ring for nothing.
  if (!call || ring !== RING_OF_EVENT[job.event] || (job.event === 'incoming' && call.state === 'ENDED')) return 'skipped';
  const kind = call.media === 'VIDEO' ? 'video call' : 'voice call';
  const what = `${TEXT_OF_EVENT[job.event]} ${kind}`;
  const group = call.chat.kind === 'GROUP';
  const payload = {
    type: 'call',
    event: job.event,
    callId: call.id,
    chatId: call.chatId,
    media: call.media,
    title: group ? (call.chat.title ?? 'Group') : call.initiator.displayName,
    body: group ? `${call.initiator.displayName}: ${what.toLowerCase()}` : what,
  };
  return sendToSubscription(deps, subscription, JSON.stringify(payload), {
    topic: callTopic(call.id),
    ttlSeconds: job.event === 'missed' ? MISSED_PUSH_TTL_SECONDS : RINGING_PUSH_TTL_SECONDS,
    urgency: job.event === 'missed' ? 'normal' : 'high',
  });
}
