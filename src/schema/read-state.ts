// Read state across devices: readStateEvents, and the viewer's unread total for app badges.
import { requireViewer } from '../auth/authenticate.ts';
import { totalUnreadCount } from '../chats/unread.ts';
import type { ReadStateTopicEvent } from '../realtime/events.ts';
import { readStateStream } from '../realtime/read-state-stream.ts';
import { builder } from './builder.ts';

const ReadStateEventTypeEnum = builder.enumType('ReadStateEventType', {
  description: 'What happened to your read state.',
  values: { READ: { description: 'Your read position in a chat moved.' } } as const,
});

const ReadStateEventRef = builder.objectRef<ReadStateTopicEvent>('ReadStateEvent').implement({
  description: 'You read a chat further, on this device or another: clear its badge.',
  fields: (t) => ({
    type: t.field({ type: ReadStateEventTypeEnum, description: 'Always READ for now.', resolve: () => 'READ' as const }),
    chatId: t.id({ description: 'The chat read further.', resolve: (event) => event.chatId }),
    lastReadSeq: t.int({
      description: 'Your read position in the chat now (at least the one that moved: read positions never go back).',
      extensions: { viewerDependent: true },
      resolve: async (event, _args, ctx) => Math.max(event.lastReadSeq, (await ctx.loaders.membership.load(event.chatId))?.lastReadSeq ?? 0),
    }),
    unreadCount: t.int({
      description: 'Chat.unreadCount now.',
      extensions: { viewerDependent: true },
      resolve: (event, _args, ctx) => ctx.loaders.unreadCount.load(event.chatId),
    }),
    totalUnreadCount: t.int({
      description: 'User.totalUnreadCount now: the app badge.',
      extensions: { viewerDependent: true },
      resolve: (_event, _args, ctx) => totalUnreadCount(ctx.prisma, requireViewer(ctx).userId),
    }),
  }),
});

builder.subscriptionFields((t) => ({
  readStateEvents: t.field({
    type: ReadStateEventRef,
    description: 'READ each time your read position in one of your chats moves (markRead on any of your devices, this one too). Not replayed: read Chat.unreadCount after reconnecting.',
    subscribe: (_root, _args, ctx) => readStateStream(ctx, requireViewer(ctx).userId),
    resolve: (event) => event,
  }),
}));

builder.prismaObjectField('User', 'totalUnreadCount', (t) =>
  t.int({
    nullable: true,
    description: "Your unread messages over all your chats (muted ones too, thread replies not): the sum of Chat.unreadCount, for the app badge. Null on anyone else's profile.",
    extensions: { viewerDependent: true },
    select: { id: true },
    resolve: (user, _args, ctx) => (ctx.viewer?.userId === user.id ? totalUnreadCount(ctx.prisma, user.id) : null),
  }),
);
