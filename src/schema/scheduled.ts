// Scheduled send (src/messages/scheduled.ts).
import { requireViewer } from '../auth/authenticate.ts';
import { decodeContent, scheduledAad, type MessageContent } from '../messages/content.ts';
import { TEXT_MAX_LENGTH } from '../messages/messages.ts';
import {
  cancelScheduledMessage,
  rescheduleMessage,
  SCHEDULE_MAX_DAYS,
  scheduledEventStream,
  scheduleMessage,
  type ScheduledEvent,
} from '../messages/scheduled.ts';
import type { Context } from '../context.ts';
import type { ScheduledMessage } from '../generated/prisma/client.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';
import { LocationInput, LocationRef, MessageKindEnum, MessageRef } from './messages.ts';
import { pageSizeFor } from './pagination.ts';

const ScheduledStateEnum = builder.enumType('ScheduledMessageState', {
  description: 'Where a scheduled message stands.',
  values: {
    PENDING: { description: 'Waiting for sendAt; can be cancelled or rescheduled.' },
    SENDING: { description: 'Being sent now.' },
    SENT: { description: 'Sent: `message` is the message it became.' },
    FAILED: { description: 'Dropped at sendAt because you could no longer send it (`failureReason` says why).' },
    CANCELLED: { description: 'Cancelled by you.' },
  },
});

async function contentOf(ctx: Context, row: Pick<ScheduledMessage, 'id' | 'content' | 'contentKeyId'>): Promise<MessageContent> {
  return decodeContent(await ctx.loaders.plaintext.load({ aad: scheduledAad(row.id), keyId: row.contentKeyId, ciphertext: row.content }));
}

builder.prismaObject('ScheduledMessage', {
  description: 'A message of yours waiting to be sent at `sendAt` (visible to you alone).',
  interfaces: [NodeRef],
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Its id (also a Node id).' }),
    chat: t.relation('chat', { description: 'The chat it is sent into.' }),
    sendAt: t.expose('sendAt', { type: 'DateTime', description: 'When it is sent (or was due).' }),
    kind: t.expose('kind', { type: MessageKindEnum, description: 'What kind of message it sends.' }),
    text: t.string({ nullable: true, description: 'Text or caption.', resolve: async (row, _args, ctx) => (await contentOf(ctx, row)).text }),
    location: t.field({
      type: LocationRef,
      nullable: true,
      description: 'For LOCATION messages.',
      resolve: async (row, _args, ctx) => (await contentOf(ctx, row)).location,
    }),
    attachmentId: t.exposeID('attachmentId', { nullable: true, description: 'IMAGE/FILE/VOICE: the upload it sends.' }),
    replyToId: t.exposeID('replyToId', { nullable: true, description: 'The message it replies to.' }),
    threadRootId: t.exposeID('threadRootId', { nullable: true, description: 'The thread it posts into.' }),
    state: t.expose('state', { type: ScheduledStateEnum, description: 'Where it stands.' }),
    failureReason: t.exposeString('failureReason', { nullable: true, description: 'FAILED: why it could not be sent.' }),
    message: t.relation('message', { nullable: true, description: 'SENT: the message it became.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When you scheduled it.' }),
  }),
});

builder.prismaObjectFields(MessageRef, (t) => ({
  scheduledFor: t.field({
    type: 'DateTime',
    nullable: true,
    description: 'Sent by scheduleMessage: the time it was scheduled for (createdAt is when it was actually sent; later if the server was down then).',
    select: { scheduledAs: { select: { sendAt: true } } },
    resolve: (message) => message.scheduledAs?.sendAt ?? null,
  }),
}));

const ScheduleMessageInput = builder.inputType('ScheduleMessageInput', {
  description: 'What sendMessage takes (but clientMessageId), and when to send it.',
  fields: (t) => ({
    chatId: t.id({ required: true, description: 'The chat to send into (you must be able to write there, now and at sendAt).' }),
    kind: t.field({ type: MessageKindEnum, required: true, description: 'As in sendMessage.' }),
    text: t.string({ required: false, description: `As in sendMessage: up to ${TEXT_MAX_LENGTH} characters.` }),
    attachmentId: t.id({ required: false, description: 'IMAGE/FILE/VOICE: an attachment you uploaded, checked now. While the schedule waits it keeps the upload from being deleted as unused.' }),
    location: t.field({ type: LocationInput, required: false, description: 'LOCATION: required.' }),
    replyToId: t.id({ required: false, description: 'A message in the same chat.' }),
    threadRootId: t.id({ required: false, description: 'Post into the thread under this message.' }),
    sendAt: t.field({ type: 'DateTime', required: true, description: `In the future, within ${SCHEDULE_MAX_DAYS} days.` }),
  }),
});

const ScheduledEventTypeEnum = builder.enumType('ScheduledMessageEventType', {
  description: 'What happened to a scheduled message: at its time, or by your hand on one of your devices.',
  values: {
    SENT: { description: 'Sent at its time.' },
    FAILED: { description: 'Dropped at its time: you could no longer send it.' },
    CANCELLED: { description: 'Cancelled with cancelScheduledMessage (on any of your devices).' },
    RESCHEDULED: { description: 'Moved to another time with rescheduleMessage (on any of your devices): `sendAt` is the new time.' },
  },
});

const ScheduledEventRef = builder.objectRef<ScheduledEvent>('ScheduledMessageEvent').implement({
  description: 'One of your scheduled messages was sent, dropped, cancelled or rescheduled.',
  fields: (t) => ({
    type: t.field({ type: ScheduledEventTypeEnum, description: 'What happened.', resolve: (event) => event.type }),
    reason: t.string({ nullable: true, description: 'FAILED: why.', resolve: (event) => event.reason }),
    scheduledMessageId: t.id({ description: 'The scheduled message (its id, as `scheduledMessage.id`).', resolve: (event) => event.scheduledMessageId }),
    sendAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'RESCHEDULED: the new time it was moved to (null for the other types).',
      resolve: (event) => (event.sendAt ? new Date(event.sendAt) : null),
    }),
    scheduledMessage: t.prismaField({
      type: 'ScheduledMessage',
      description: 'The scheduled message, in its new state.',
      resolve: (query, event, _args, ctx) => ctx.prisma.scheduledMessage.findUniqueOrThrow({ ...query, where: { id: event.scheduledMessageId } }),
    }),
  }),
});

builder.queryFields((t) => ({
  scheduledMessages: t.prismaConnection({
    type: 'ScheduledMessage',
    cursor: 'id',
    description: 'Your scheduled messages still waiting (PENDING), soonest first; with chatId, of that chat only.',
    args: { chatId: t.arg.id({ required: false, description: 'Only those of this chat.' }) },
    defaultSize: 20,
    maxSize: pageSizeFor,
    resolve: (query, _root, args, ctx) =>
      ctx.prisma.scheduledMessage.findMany({
        ...query,
        where: { senderId: requireViewer(ctx).userId, state: 'PENDING', ...(args.chatId == null ? {} : { chatId: String(args.chatId) }) },
        orderBy: [{ sendAt: 'asc' }, { id: 'asc' }],
      }),
  },
  { name: 'ScheduledMessageConnection' },
  { name: 'ScheduledMessageEdge' },
  ),
}));

builder.mutationFields((t) => ({
  scheduleMessage: t.prismaField({
    type: 'ScheduledMessage',
    description: 'Schedules a message: at sendAt it is sent as if you sent it then (if you may still send it; else FAILED on scheduledMessageEvents).',
    args: { input: t.arg({ type: ScheduleMessageInput, required: true, description: 'What to send, where and when.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('sendMessageTotal', viewerId);
      const row = await scheduleMessage(ctx, viewerId, input);
      return ctx.prisma.scheduledMessage.findUniqueOrThrow({ ...query, where: { id: row.id } });
    },
  }),
  cancelScheduledMessage: t.prismaField({
    type: 'ScheduledMessage',
    description: 'Cancels a PENDING scheduled message of yours (CONFLICT once it is being sent or done).',
    args: { id: t.arg.id({ required: true, description: 'The scheduled message.' }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await cancelScheduledMessage(ctx, requireViewer(ctx).userId, String(args.id));
      return ctx.prisma.scheduledMessage.findUniqueOrThrow({ ...query, where: { id: row.id } });
    },
  }),
  rescheduleMessage: t.prismaField({
    type: 'ScheduledMessage',
    description: `Moves a PENDING scheduled message of yours to another time (in the future, within ${SCHEDULE_MAX_DAYS} days).`,
    args: {
      id: t.arg.id({ required: true, description: 'The scheduled message.' }),
      sendAt: t.arg({ type: 'DateTime', required: true, description: 'The new time.' }),
    },
    resolve: async (query, _root, args, ctx) => {
      const row = await rescheduleMessage(ctx, requireViewer(ctx).userId, String(args.id), args.sendAt);
      return ctx.prisma.scheduledMessage.findUniqueOrThrow({ ...query, where: { id: row.id } });
    },
  }),
}));

builder.subscriptionFields((t) => ({
  scheduledMessageEvents: t.field({
    type: ScheduledEventRef,
    description:
      'Your scheduled messages as they are sent (SENT) or dropped (FAILED, with the reason), and as you cancel (CANCELLED) or reschedule (RESCHEDULED, with the new sendAt) them on any of your devices.',
    subscribe: (_root, _args, ctx) => scheduledEventStream(ctx, requireViewer(ctx).userId),
    resolve: (event) => event,
  }),
}));
