// Reactions: emoji on messages, grouped per emoji, with who reacted.
import { requireViewer } from '../auth/authenticate.ts';
import { badUserInput } from '../errors.ts';
import type { ReactionGroup } from '../messages/reaction-loaders.ts';
import { addReaction, removeReaction, REACTIONS_MAX_DISTINCT } from '../messages/reactions.ts';
import { builder } from './builder.ts';
import { MAX_PAGE_SIZE } from './pagination.ts';
import { UserConnection } from './users.ts';

const REACTORS_DEFAULT = 10;

const ReactionGroupRef = builder.objectRef<ReactionGroup>('ReactionGroup').implement({
  description: 'Everyone who reacted to a message with one emoji.',
  fields: (t) => ({
    emoji: t.string({ description: 'One emoji grapheme cluster.', resolve: (group) => group.emoji }),
    count: t.int({ description: 'How many users reacted with it (not counting anyone on either side of a block with you).', resolve: (group) => group.count }),
    viewerReacted: t.boolean({
      description: 'Whether the viewer is one of them.',
      extensions: { viewerDependent: true },
      resolve: (group) => group.viewerReacted,
    }),
    users: t.field({
      type: UserConnection,
      description: `The first users who reacted with it, earliest first (default ${REACTORS_DEFAULT}); never one you blocked or who blocked you.`,
      args: { first: t.arg.int({ required: false, description: `1 to ${MAX_PAGE_SIZE}.` }) },
      resolve: async (group, args, ctx) => {
        const first = args.first ?? REACTORS_DEFAULT;
        if (first < 0 || first > MAX_PAGE_SIZE) throw badUserInput('first', `first must be between 0 and ${MAX_PAGE_SIZE}.`);
        const { users, hasMore } = await ctx.loaders.reactors.load({ messageId: group.messageId, emoji: group.emoji, first });
        const edges = users.map((node) => ({ cursor: node.id, node }));
        return {
          edges,
          pageInfo: { hasNextPage: hasMore, hasPreviousPage: false, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
        };
      },
    }),
  }),
});

builder.prismaObjectField('Message', 'reactions', (t) =>
  t.field({
    type: [ReactionGroupRef],
    description: `Reactions grouped by emoji, in the order each emoji was first used (at most ${REACTIONS_MAX_DISTINCT}). Reactions of users you blocked or who blocked you are left out (an emoji only they used does not show).`,
    // What is left out depends on the viewer's blocks: a shared event result would leak them.
    extensions: { viewerDependent: true },
    select: { id: true },
    resolve: (message, _args, ctx) => ctx.loaders.reactionGroups.load(message.id),
  }),
);

const reactionArgs = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) => ({
  messageId: t.arg.id({ required: true, description: 'A message in a chat you are in.' }),
  emoji: t.arg.string({ required: true, description: 'Exactly one emoji; skin tones, ZWJ sequences, flags and keycaps count as one.' }),
});

builder.mutationFields((t) => ({
  addReaction: t.prismaField({
    type: 'Message',
    description: `Reacts to a message with an emoji; reacting with the same one again changes nothing. At most ${REACTIONS_MAX_DISTINCT} different emoji per message.`,
    args: reactionArgs(t),
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('sendMessageTotal', viewerId);
      const message = await addReaction(ctx, viewerId, String(args.messageId), args.emoji);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  removeReaction: t.prismaField({
    type: 'Message',
    description: 'Takes your reaction with this emoji off a message; nothing happens if it is not there.',
    args: reactionArgs(t),
    resolve: async (query, _root, args, ctx) => {
      const message = await removeReaction(ctx, requireViewer(ctx).userId, String(args.messageId), args.emoji);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
}));
