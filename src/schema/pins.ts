// Pins and forwarding: pinMessage/unpinMessage, Chat.pinnedMessages, forwardMessage and Message.forwardedFrom.
import { requireViewer } from '../auth/authenticate.ts';
import type { ForwardOrigin } from '../messages/forward-loaders.ts';
import { forwardMessage } from '../messages/forwarding.ts';
import { pinMessage, PINS_MAX, unpinMessage } from '../messages/pins.ts';
import { builder } from './builder.ts';
import { MessageConnection } from './message-connection.ts';
import { pageSizeFor } from './pagination.ts';
import { UserRef } from './users.ts';

builder.prismaObjectField('Chat', 'pinnedMessages', (t) =>
  t.relatedConnection(
    'messages',
    {
      cursor: 'id',
      description: `Pinned messages (at most ${PINS_MAX}), newest message first.`,
      defaultSize: 20,
      maxSize: pageSizeFor,
      query: { where: { pin: { isNot: null } }, orderBy: { seq: 'desc' } },
    },
    MessageConnection,
  ),
);

const ForwardedFromRef = builder.objectRef<ForwardOrigin>('ForwardedFrom').implement({
  description: 'Where a forwarded message came from: who sent the original and when (never which chat it was in).',
  fields: (t) => ({
    sender: t.field({ type: UserRef, description: 'The sender of the original message.', resolve: (origin) => origin.sender }),
    sentAt: t.field({ type: 'DateTime', description: 'When the original was sent.', resolve: (origin) => origin.sentAt }),
  }),
});

builder.prismaObjectField('Message', 'forwardedFrom', (t) =>
  t.field({
    type: ForwardedFromRef,
    nullable: true,
    description: 'Set when this message is a forwarded copy (forwardMessage).',
    select: { id: true },
    resolve: (message, _args, ctx) => ctx.loaders.forwardedFrom.load(message.id),
  }),
);

const messageIdArg = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) => ({
  messageId: t.arg.id({ required: true, description: 'A message in a chat you are in.' }),
});

builder.mutationFields((t) => ({
  pinMessage: t.prismaField({
    type: 'Message',
    description: `Pins a message in its chat (group OWNER or ADMIN; either member of a direct chat). At most ${PINS_MAX} per chat; pinning again changes nothing.`,
    args: messageIdArg(t),
    resolve: async (query, _root, args, ctx) => {
      const message = await pinMessage(ctx, requireViewer(ctx).userId, String(args.messageId));
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  unpinMessage: t.prismaField({
    type: 'Message',
    description: 'Unpins a message (who may pin may unpin); nothing happens if it is not pinned.',
    args: messageIdArg(t),
    resolve: async (query, _root, args, ctx) => {
      const message = await unpinMessage(ctx, requireViewer(ctx).userId, String(args.messageId));
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  forwardMessage: t.prismaField({
    type: 'Message',
    description:
      'Sends a copy of a message you can read into a chat you can write to: same kind, text, location and attachment, with `forwardedFrom`. Not from or into an end-to-end encrypted chat.',
    args: { ...messageIdArg(t), toChatId: t.arg.id({ required: true, description: 'The chat to send the copy to.' }) },
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('sendMessage', `${viewerId}:${String(args.toChatId)}`);
      await ctx.rateLimits.consume('sendMessageTotal', viewerId);
      const message = await forwardMessage(ctx, viewerId, String(args.messageId), String(args.toChatId));
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
}));

builder.prismaObjectField('Message', 'pinned', (t) =>
  t.boolean({
    description: 'Whether the message is pinned in its chat.',
    select: { pin: { select: { messageId: true } } },
    resolve: (message) => message.pin !== null,
  }),
);
