// Threads (src/messages/threads.ts): Message.thread, Message.threadReplies, following.
import { resolveArrayConnection } from '@pothos/plugin-relay';
import { requireViewer } from '../auth/authenticate.ts';
import { setThreadFollowing, THREAD_PARTICIPANTS_MAX, type ThreadSummary } from '../messages/threads.ts';
import { builder } from './builder.ts';
import { MessageConnection } from './message-connection.ts';
import { MessageRef } from './messages.ts';
import { pageSizeFor } from './pagination.ts';
import { UserConnection, UserRef } from './users.ts';

const ThreadSummaryRef = builder.objectRef<ThreadSummary>('ThreadSummary').implement({
  description: 'The thread under a root message.',
  fields: (t) => ({
    replyCount: t.exposeInt('replyCount', { description: 'Replies in the thread (deleted ones not counted).' }),
    lastReplyAt: t.expose('lastReplyAt', { type: 'DateTime', description: 'When the newest reply was sent.' }),
    participants: t.connection(
      {
        type: UserRef,
        description: `Who replied, in the order of their first reply (the first ${THREAD_PARTICIPANTS_MAX}).`,
        resolve: async (summary, args, ctx) => {
          pageSizeFor(args);
          const users = await Promise.all(summary.participantIds.map((id) => ctx.prisma.user.findUnique({ where: { id } })));
          return resolveArrayConnection({ args }, users.filter((user) => user !== null));
        },
      },
      UserConnection,
    ),
    viewerFollows: t.boolean({
      description: 'Whether you follow this thread: pushes for its replies reach you even in a muted chat.',
      resolve: (summary, _args, ctx) => ctx.loaders.viewerFollowsThread.load(summary.rootId),
    }),
  }),
});

builder.prismaObjectFields(MessageRef, (t) => ({
  threadRootId: t.exposeID('threadRootId', {
    nullable: true,
    description: 'Set on a thread reply: the root message it was posted under.',
  }),
  thread: t.field({
    type: ThreadSummaryRef,
    nullable: true,
    description: 'On a root message with replies: its thread. Null on a message without replies and on a thread reply.',
    resolve: (message, _args, ctx) => (message.threadRootId ? null : ctx.loaders.threadSummary.load(message.id)),
  }),
  threadReplies: t.relatedConnection(
    'threadReplies',
    {
      cursor: 'chatId_seq',
      description: 'The replies under this message, in send order (paged like Chat.messages). Empty for a thread reply.',
      defaultSize: 50,
      maxSize: pageSizeFor,
      query: { orderBy: { seq: 'asc' } },
    },
    MessageConnection,
  ),
}));

builder.mutationFields((t) => ({
  followThread: t.prismaField({
    type: 'Message',
    description: 'Follow the thread under this root message: its replies push to you even in a muted chat.',
    args: { messageId: t.arg.id({ required: true, description: 'The thread root.' }) },
    resolve: async (query, _root, args, ctx) => {
      const message = await setThreadFollowing(ctx, requireViewer(ctx).userId, String(args.messageId), true);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  unfollowThread: t.prismaField({
    type: 'Message',
    description: 'Stop following the thread under this root message (also if you sent it or replied): its replies no longer push to you.',
    args: { messageId: t.arg.id({ required: true, description: 'The thread root.' }) },
    resolve: async (query, _root, args, ctx) => {
      const message = await setThreadFollowing(ctx, requireViewer(ctx).userId, String(args.messageId), false);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
}));
