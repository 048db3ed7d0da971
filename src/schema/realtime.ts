// Live events over graphql-ws: messages, chat changes, typing, presence.
import { setTyping } from '../chats/typing.ts';
import { requireViewer } from '../auth/authenticate.ts';
import { chatOfMember } from '../chats/membership.ts';
import { badUserInput } from '../errors.ts';
import {
  chatEventStream,
  messageEventStream,
  presenceStream,
  typingStream,
  type ChatEvent,
  type MessageEvent,
  type TypingEvent,
} from '../realtime/streams.ts';
import type { PresenceTopicEvent } from '../realtime/events.ts';
import { effectiveStatus, presenceAudience, PRESENCE_USER_IDS_MAX } from '../users/status.ts';
import { builder } from './builder.ts';
import { UserStatusEnum } from './users.ts';

const MessageEventTypeEnum = builder.enumType('MessageEventType', {
  description: 'What happened to the message.',
  values: {
    CREATED: { description: 'It was sent.' },
    EDITED: { description: 'Its text changed (the earlier one is in `edits`), or, for a CALL message, its call.' },
    DELETED: { description: 'It was deleted: its content is gone, `deletedAt` is set.' },
    REACTIONS_CHANGED: { description: 'Someone added or removed a reaction: read `message { reactions }` again.' },
    READ_BY_CHANGED: {
      description: 'A member (`reader`) read up to this message, in a chat of up to 50 members: read `message { readBy }` again.',
    },
  } as const,
});

const MessageEventRef = builder.objectRef<MessageEvent>('MessageEvent').implement({
  description: 'A message was created, edited or deleted in one of your chats.',
  fields: (t) => ({
    type: t.field({ type: MessageEventTypeEnum, description: 'What happened.', resolve: (event) => event.type }),
    chatId: t.id({ description: "The message's chat.", resolve: (event) => event.chatId }),
    seq: t.int({
      description: "The message's position in its chat: after a reconnect, resubscribe with `sinceSeq` (or page `messages`) from the last one you saw.",
      resolve: (event) => event.seq,
    }),
    message: t.prismaField({
      type: 'Message',
      description: 'The message as it is now.',
      resolve: (query, event, _args, ctx) => ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: event.messageId } }),
    }),
    reader: t.prismaField({
      type: 'User',
      nullable: true,
      description: 'For READ_BY_CHANGED: the member who read.',
      resolve: (query, event, _args, ctx) => (event.readerId ? ctx.prisma.user.findUnique({ ...query, where: { id: event.readerId } }) : null),
    }),
    threadRootId: t.id({
      nullable: true,
      description: 'For a thread reply: its root message (Message.threadRootId), so a client can route it without selecting the message.',
      // Events published with the message row carry it (it never changes); others read it.
      resolve: async (event, _args, ctx) =>
        event.threadRootId !== undefined
          ? event.threadRootId
          : ((await ctx.prisma.message.findUnique({ where: { id: event.messageId }, select: { threadRootId: true } }))?.threadRootId ?? null),
    }),
  }),
});

const ChatEventTypeEnum = builder.enumType('ChatEventType', {
  description: 'What changed about the chat.',
  values: {
    CREATED: { description: 'A chat with you in it was created.' },
    UPDATED: { description: 'Its title or visibility changed (or, in a direct chat, the other member deleted their account).' },
    MEMBER_JOINED: { description: '`user` joined a public group.' },
    MEMBER_LEFT: { description: '`user` left.' },
    MEMBER_ADDED: { description: '`user` was added by `actor` (you, if it is you: the chat is new to you).' },
    MEMBER_REMOVED: { description: '`user` was removed by `actor`.' },
    ROLE_CHANGED: { description: "`user`'s role changed." },
    MESSAGE_PINNED: { description: 'A message (`message`) was pinned.' },
    MESSAGE_UNPINNED: { description: 'A message (`message`) was unpinned.' },
  } as const,
});

const ChatEventRef = builder.objectRef<ChatEvent>('ChatEvent').implement({
  description: 'Something changed about one of your chats (or your membership of it).',
  fields: (t) => ({
    type: t.field({ type: ChatEventTypeEnum, description: 'What changed.', resolve: (event) => event.type }),
    chatId: t.id({ description: 'The chat; there even when `chat` is null to you.', resolve: (event) => event.chatId }),
    chat: t.prismaField({
      type: 'Chat',
      nullable: true,
      description:
        'The chat as it is now; null to someone no longer in it (the member removed or who left gets the chat id and the removal, not its messages or members).',
      extensions: { viewerDependent: true },
      resolve: (query, event, _args, ctx) => {
        const viewer = ctx.viewer;
        return viewer ? ctx.prisma.chat.findFirst({ ...query, where: chatOfMember(event.chatId, viewer.userId) }) : null;
      },
    }),
    user: t.prismaField({
      type: 'User',
      nullable: true,
      description: 'The member concerned (joined, left, added, removed, role changed; for UPDATED in a direct chat, the other member when they deleted their account).',
      resolve: (query, event, _args, ctx) => (event.userId ? ctx.prisma.user.findUnique({ ...query, where: { id: event.userId } }) : null),
    }),
    message: t.prismaField({
      type: 'Message',
      nullable: true,
      description: 'For MESSAGE_PINNED and MESSAGE_UNPINNED: the message.',
      resolve: (query, event, _args, ctx) => (event.messageId ? ctx.prisma.message.findUnique({ ...query, where: { id: event.messageId } }) : null),
    }),
    actor: t.prismaField({
      type: 'User',
      nullable: true,
      description: 'Who made the change.',
      resolve: (query, event, _args, ctx) => ctx.prisma.user.findUnique({ ...query, where: { id: event.actorId } }),
    }),
  }),
});

const TypingEventRef = builder.objectRef<TypingEvent>('TypingEvent').implement({
  description: 'Someone started or stopped typing. A start without a refresh ends by itself.',
  fields: (t) => ({
    chatId: t.id({ description: 'The chat typed in.', resolve: (event) => event.chatId }),
    user: t.prismaField({
      type: 'User',
      description: 'Who is typing.',
      resolve: (query, event, _args, ctx) => ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: event.userId } }),
    }),
    isTyping: t.boolean({ description: 'True: started (or still typing); false: stopped.', resolve: (event) => event.isTyping }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When a start ends unless refreshed.',
      resolve: (event) => (event.isTyping ? new Date(event.expiresAt) : null),
    }),
  }),
});

const PresenceEventRef = builder.objectRef<PresenceTopicEvent>('PresenceEvent').implement({
  description: "A user's presence changed.",
  fields: (t) => ({
    user: t.prismaField({
      type: 'User',
      description: 'Whose presence changed.',
      resolve: (query, event, _args, ctx) => ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: event.userId } }),
    }),
    status: t.field({
      type: UserStatusEnum,
      description: 'OFFLINE, or while connected ONLINE (or the BUSY/AWAY the user chose).',
      resolve: async (event, _args, ctx) => {
        const user = await ctx.prisma.user.findUniqueOrThrow({ where: { id: event.userId }, select: { status: true } });
        return effectiveStatus(user.status, event.online);
      },
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the user was last connected; null when not known.',
      resolve: (event) => (event.lastSeenAt ? new Date(event.lastSeenAt) : null),
    }),
  }),
});

// Each field resolves to the event itself: its arguments pick the events (the subscribe function)
// and never change what an event shows, which is what lets shared-execution.ts share one execution
// between subscribers whose arguments differ (every resumed subscription has its own sinceSeq).
builder.subscriptionFields((t) => ({
  messageEvents: t.field({
    type: MessageEventRef,
    description:
      'Messages created, edited and deleted, in order. With `chatId`: that chat (NOT_FOUND if you are not in it); without: every chat you are in, including ones you join later and never one you left. With `chatId` and `sinceSeq`: first everything after that position, then live: exactly sinceSeq + 1, + 2, … once each, in order (more than 1000 behind is BAD_USER_INPUT: page through Chat.messages first). The server never completes this subscription, it ends it with an error: UNAVAILABLE (with retryAfterSeconds) means resubscribe, on any instance, with sinceSeq set to the last seq you received (the database was out of reach too long, you read too slowly, or the server is shutting down).',
    args: { chatId: t.arg.id({ required: false, description: 'Only this chat; omitted: every chat you are in.' }), sinceSeq: t.arg.int({ required: false, description: 'With chatId: first every message after this seq, then live.' }) },
    subscribe: (_root, args, ctx) => {
      const { userId } = requireViewer(ctx);
      if (args.sinceSeq != null && args.chatId == null) throw badUserInput('sinceSeq', 'sinceSeq needs a chatId.');
      return messageEventStream(ctx, userId, { chatId: args.chatId == null ? null : String(args.chatId), sinceSeq: args.sinceSeq });
    },
    resolve: (event) => event,
  }),
  chatEvents: t.field({
    type: ChatEventRef,
    description: 'Chats created or updated, members joining, leaving, added or removed: for your chats.',
    subscribe: (_root, _args, ctx) => chatEventStream(ctx, requireViewer(ctx).userId),
    resolve: (event) => event,
  }),
  typing: t.field({
    type: TypingEventRef,
    description: 'Others starting and stopping typing in a chat you are in. A start ends by itself a few seconds (TYPING_TTL, default 6) after its last refresh.',
    args: { chatId: t.arg.id({ required: true, description: 'The chat to watch.' }) },
    subscribe: (_root, args, ctx) => typingStream(ctx, requireViewer(ctx).userId, String(args.chatId)),
    resolve: (event) => event,
  }),
  presence: t.field({
    type: PresenceEventRef,
    description: `Presence changes of these users (up to ${PRESENCE_USER_IDS_MAX}, among your contacts and those you share a chat with); without userIds: your contacts and direct-chat partners. Never of someone who blocked you.`,
    args: { userIds: t.arg.idList({ required: false, description: `The users to follow (up to ${PRESENCE_USER_IDS_MAX}); omitted: your contacts and direct-chat partners.` }) },
    subscribe: async (_root, args, ctx) => {
      const { userId } = requireViewer(ctx);
      const audience = await presenceAudience(ctx.prisma, userId, args.userIds?.map(String) ?? null);
      return presenceStream(ctx, userId, audience);
    },
    resolve: (event) => event,
  }),
}));

builder.mutationFields((t) => ({
  setTyping: t.boolean({
    description: 'Tells the chat you are (or stopped) typing. While typing, refresh every few seconds (before TYPING_TTL, default 6 s, runs out).',
    args: { chatId: t.arg.id({ required: true, description: 'The chat you type in.' }), isTyping: t.arg.boolean({ required: true, description: 'True while typing (refresh it within TYPING_TTL); false when you stop.' }) },
    resolve: async (_root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('typing', viewerId);
      await setTyping(ctx, viewerId, String(args.chatId), args.isTyping);
      return true;
    },
  }),
}));
