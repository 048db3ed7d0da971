// Scheduled send: a message kept (sealed) until `sendAt`, then sent as if its sender sent it then:
// membership, blocks and the rest are checked by sendMessage at that moment, and a send that is
// refused becomes FAILED, told to the sender on scheduledMessageEvents. The runner
// (scheduled-runner.ts) decides when; this module decides what happens, exactly once.
import { GraphQLError } from 'graphql';
import { requireMembership } from '../chats/membership.ts';
import { badUserInput, conflict, notFound } from '../errors.ts';
import type { ScheduledMessage } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import { startPeriodicJob } from '../periodic-job.ts';
import { openStream } from '../realtime/stream.ts';
import type { Services } from '../services.ts';
import { decodeContent, scheduledAad, sealContent } from './content.ts';
import { attachmentProblem, sendMessage, validateSend, type SendMessageInput } from './messages.ts';
import { isForeignKeyViolation } from '../db/errors.ts';

type ScheduledServices = Pick<Services, 'prisma' | 'cipher' | 'events' | 'notifications' | 'config' | 'scheduledSends' | 'logger'>;

export const SCHEDULE_MAX_DAYS = 365;
/** The sweep hands the runner every schedule due within this long (and re-arms long waits). */
const SWEEP_AHEAD_MS = 15 * 60_000;
const SWEEP_INTERVAL_MS = 5 * 60_000;
/** A run a little early (timer drift, clock skew between instances) still counts as due. */
const EARLY_MS = 1_000;
/** Refusals that are the schedule's fault, not the moment's: the message is dropped, not retried. */
const REFUSALS = new Set(['NOT_FOUND', 'FORBIDDEN', 'BAD_USER_INPUT', 'CONFLICT']);

/** The clientMessageId a schedule is sent with: the (sender, clientMessageId) index makes a second send return the first. */
export const scheduledClientId = (id: string) => `scheduled:${id}`;

export type ScheduledEventType = 'SENT' | 'FAILED' | 'CANCELLED' | 'RESCHEDULED';
export interface ScheduledEvent {
  type: ScheduledEventType;
  scheduledMessageId: string;
  reason: string | null;
  /** RESCHEDULED: the new time (ISO 8601; the row may move again before the event is read). */
  sendAt?: string;
}

const channel = (userId: string) => `scheduled:${userId}`;

export interface ScheduleMessageInput extends Omit<SendMessageInput, 'clientMessageId'> {
  sendAt: Date;
}

function checkSendAt(sendAt: Date, field: string) {
  const now = Date.now();
  if (sendAt.getTime() <= now) throw badUserInput(field, 'sendAt must be in the future.');
  if (sendAt.getTime() > now + SCHEDULE_MAX_DAYS * 86_400_000) throw badUserInput(field, `sendAt must be within ${SCHEDULE_MAX_DAYS} days.`);
}

async function handToRunner(services: ScheduledServices, row: Pick<ScheduledMessage, 'id' | 'sendAt'>) {
  // Far-off schedules wait for the sweep; a runner that cannot take one now (Redis down) leaves it to the sweep too.
  if (row.sendAt.getTime() - Date.now() > SWEEP_AHEAD_MS && !services.scheduledSends.distributed) return;
  await services.scheduledSends.schedule(row.id, row.sendAt).catch((error: unknown) => {
    services.logger.warn({ err: error, scheduledMessageId: row.id }, 'could not queue a scheduled message; the sweep will');
  });
}

export async function scheduleMessage(services: ScheduledServices, senderId: string, input: ScheduleMessageInput): Promise<ScheduledMessage> {
  checkSendAt(input.sendAt, 'input.sendAt');
  const content = validateSend(input);
  const chatId = String(input.chatId);
  const membership = await requireMembership(services.prisma, chatId, senderId);
  if (membership.chat.encrypted) throw badUserInput('input.chatId', 'This chat is end-to-end encrypted: the server takes no plaintext in it.');
  // Checked now too: while it waits, the schedule keeps its upload from the unused-upload clean-up.
  const problem = content.attachmentId && (await attachmentProblem(services, senderId, content.attachmentId, input.kind));
  if (problem) throw problem;
  const id = uuidv7();
  const sealed = await sealContent(services.cipher, scheduledAad(id), content);
  const row = await services.prisma.scheduledMessage
    .create({
      data: {
        id,
        senderId,
        chatId,
        sendAt: input.sendAt,
        kind: input.kind,
        ...sealed,
        attachmentId: content.attachmentId,
        replyToId: input.replyToId == null ? null : String(input.replyToId),
        threadRootId: input.threadRootId == null ? null : String(input.threadRootId),
      },
    })
    .catch((error: unknown) => {
      // The upload was cleaned up (unused past UPLOAD_RETENTION) between the check and the insert.
      if (isForeignKeyViolation(error)) throw badUserInput('input.attachmentId', 'Unknown attachment.');
      throw error;
    });
  await handToRunner(services, row);
  return row;
}

async function pendingOf({ prisma }: ScheduledServices, viewerId: string, id: string) {
  const row = await prisma.scheduledMessage.findUnique({ where: { id } });
  if (!row || row.senderId !== viewerId) throw notFound('ScheduledMessage');
  return row;
}

const notPending = (row: ScheduledMessage) => conflict('id', `This scheduled message is ${row.state.toLowerCase()}: it can no longer change.`);

export async function cancelScheduledMessage(services: ScheduledServices, viewerId: string, id: string): Promise<ScheduledMessage> {
  const row = await pendingOf(services, viewerId, id);
  const [cancelled] = await services.prisma.scheduledMessage.updateManyAndReturn({ where: { id, state: 'PENDING' }, data: { state: 'CANCELLED' } });
  if (!cancelled) throw notPending(await services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: row.id } }));
  await tell(services, viewerId, { type: 'CANCELLED', scheduledMessageId: id, reason: null });
  return cancelled;
}

export async function rescheduleMessage(services: ScheduledServices, viewerId: string, id: string, sendAt: Date): Promise<ScheduledMessage> {
  checkSendAt(sendAt, 'sendAt');
  const row = await pendingOf(services, viewerId, id);
  const [moved] = await services.prisma.scheduledMessage.updateManyAndReturn({ where: { id, state: 'PENDING' }, data: { sendAt } });
  if (!moved) throw notPending(await services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: row.id } }));
  // The run queued for the old time finds the row not due and leaves it alone.
  await handToRunner(services, moved);
  await tell(services, viewerId, { type: 'RESCHEDULED', scheduledMessageId: id, reason: null, sendAt: moved.sendAt.toISOString() });
  return moved;
}

async function tell(services: ScheduledServices, senderId: string, event: ScheduledEvent) {
  await services.events.bus.publish(channel(senderId), event).catch((error: unknown) => {
    services.logger.warn({ err: error }, 'could not publish a scheduled message event');
  });
}

/**
 * Sends a due schedule, once: the row is claimed (PENDING or a crashed run's SENDING, and due),
 * then sent with its own client id, so a second runner, or a retry after a crash between the send
 * and the bookkeeping, gets the same message back. A refusal drops it as FAILED; anything else
 * throws for the runner to retry.
 */
export async function runScheduledMessage(services: ScheduledServices, id: string): Promise<void> {
  const { prisma } = services;
  const [row] = await prisma.scheduledMessage.updateManyAndReturn({
    where: { id, state: { in: ['PENDING', 'SENDING'] }, sendAt: { lte: new Date(Date.now() + EARLY_MS) } },
    data: { state: 'SENDING' },
  });
  if (!row) return;
  const [plaintext] = await services.cipher.open([{ keyId: row.contentKeyId, aad: scheduledAad(row.id), ciphertext: row.content }]);
  const { text, location } = decodeContent(plaintext!);
  let messageId: string | null = null;
  let reason: string | null = null;
  try {
    const message = await sendMessage(services, row.senderId, {
      chatId: row.chatId,
      kind: row.kind,
      text,
      location,
      attachmentId: row.attachmentId,
      replyToId: row.replyToId,
      threadRootId: row.threadRootId,
      clientMessageId: scheduledClientId(row.id),
    });
    messageId = message.id;
  } catch (error) {
    const code = error instanceof GraphQLError ? error.extensions.code : undefined;
    if (typeof code !== 'string' || !REFUSALS.has(code)) throw error;
    reason = (error as GraphQLError).message;
  }
  const updated = await prisma.scheduledMessage.updateMany({
    where: { id, state: 'SENDING' },
    data: messageId ? { state: 'SENT', messageId } : { state: 'FAILED', failureReason: reason },
  });
  if (updated.count > 0) await tell(services, row.senderId, { type: messageId ? 'SENT' : 'FAILED', scheduledMessageId: id, reason });
}

/** Hands every schedule due within SWEEP_AHEAD_MS (crashed runs included) to the runner again; returns how many. */
export async function sweepScheduledMessages(services: ScheduledServices): Promise<number> {
  const due = await services.prisma.scheduledMessage.findMany({
    where: { state: { in: ['PENDING', 'SENDING'] }, sendAt: { lte: new Date(Date.now() + SWEEP_AHEAD_MS) } },
    select: { id: true, sendAt: true },
    orderBy: { sendAt: 'asc' },
  });
  for (const row of due) await services.scheduledSends.schedule(row.id, row.sendAt);
  return due.length;
}

/** Starts the runner and the sweep: at once (what came due while everything was down is sent now, late) and every few minutes. */
export async function startScheduledSends(services: ScheduledServices): Promise<() => Promise<void>> {
  await services.scheduledSends.start((id) => runScheduledMessage(services, id));
  const late = await sweepScheduledMessages(services).catch((error: unknown) => {
    services.logger.warn({ err: error }, 'scheduled message sweep failed');
    return 0;
  });
  if (late > 0) services.logger.info({ scheduled: late }, 'scheduled messages due soon or overdue handed to the runner');
  return startPeriodicJob(services.logger, {
    intervalMs: SWEEP_INTERVAL_MS,
    run: () => sweepScheduledMessages(services),
    doneMessage: 'scheduled messages due soon handed to the runner',
    failedMessage: 'scheduled message sweep failed',
  });
}

/** The viewer's scheduled messages being sent, failing, cancelled or rescheduled (on any of their devices), live. */
export function scheduledEventStream(services: Pick<Services, 'events'>, viewerId: string) {
  return openStream<ScheduledEvent>((controls) => services.events.bus.listen(channel(viewerId), (payload) => controls.emit(payload as ScheduledEvent)));
}
