// Mentions: who a message mentions, the viewer's unread mentions per chat, and all of them.
import { requireViewer } from '../auth/authenticate.ts';
import { chatsOfMember } from '../chats/membership.ts';
import { MENTIONS_MAX } from '../messages/mentions.ts';
import { builder } from './builder.ts';
import { MessageConnection } from './message-connection.ts';
import { pageSizeFor } from './pagination.ts';
import { UserRef } from './users.ts';

builder.prismaObjectFields('Message', (t) => ({
  mentions: t.field({
    type: [UserRef],
    description: `Members this message mentions by @username (up to ${MENTIONS_MAX}), resolved when it was sent or last edited; by username.`,
    select: { id: true },
    resolve: async (message, _args, ctx) => (await ctx.loaders.mentions.load(message.id)).users,
  }),
  mentionsAll: t.boolean({
    description: 'Whether a group owner or admin mentioned everyone with @all in it.',
    select: { id: true },
    resolve: async (message, _args, ctx) => (await ctx.loaders.mentions.load(message.id)).all,
  }),
}));

builder.prismaObjectField('Chat', 'unreadMentionCount', (t) =>
  t.int({
    description: "Messages after the viewer's read position that mention the viewer (by @username or @all), not deleted; thread replies included.",
    extensions: { viewerDependent: true },
    select: { id: true },
    resolve: (chat, _args, ctx) => ctx.loaders.unreadMentionCount.load(chat.id),
  }),
);

builder.queryFields((t) => ({
  mentions: t.prismaConnection(
    {
      type: 'Message',
      cursor: 'id',
      description: 'Messages that mention the viewer, newest first, across the chats the viewer is in (deleted ones left out).',
      defaultSize: 20,
      maxSize: pageSizeFor,
      resolve: (query, _root, _args, ctx) => {
        const { userId } = requireViewer(ctx);
        return ctx.prisma.message.findMany({
          ...query,
          where: { mentions: { some: { userId } }, deletedAt: null, chat: chatsOfMember(userId) },
          orderBy: { id: 'desc' },
        });
      },
    },
    MessageConnection,
  ),
}));
