// Contacts and blocking.
import { requireViewer } from '../auth/authenticate.ts';
import { addContact, blocksBy, blockUser, CONTACTS_BY_USERNAME, contactsOf, removeContact, unblockUser } from '../users/contacts.ts';
import { builder } from './builder.ts';
import { pageSizeFor } from './pagination.ts';
import { UserConnection } from './users.ts';

builder.queryFields((t) => ({
  contacts: t.prismaConnection(
    {
      type: 'User',
      cursor: 'username',
      description: 'Your contacts, by username.',
      defaultSize: 50,
      maxSize: pageSizeFor,
      resolve: (query, _root, _args, ctx) =>
        ctx.prisma.user.findMany({ ...query, where: contactsOf(requireViewer(ctx).userId), orderBy: CONTACTS_BY_USERNAME }),
    },
    UserConnection,
  ),
  blockedUsers: t.prismaField({
    type: ['User'],
    description: 'Users you blocked, most recent first.',
    resolve: async (query, _root, _args, ctx) => {
      const blocks = await ctx.prisma.userBlock.findMany({
        ...blocksBy(requireViewer(ctx).userId),
        // An empty selection from Pothos means "the whole row".
        include: { blocked: Object.keys(query).length > 0 ? query : true },
      });
      return blocks.map((block) => block.blocked);
    },
  }),
}));

builder.mutationFields((t) => ({
  addContact: t.prismaField({
    type: 'User',
    description: 'Adds a user to your contacts.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('addContact', viewerId);
      await addContact(ctx.prisma, viewerId, String(args.userId));
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: String(args.userId) } });
    },
  }),
  removeContact: t.boolean({
    description: 'Removes a user from your contacts; false if they were not in them.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => removeContact(ctx.prisma, requireViewer(ctx).userId, String(args.userId)),
  }),
  blockUser: t.boolean({
    description:
      'Blocks a user: no direct chat between you (new messages in an existing one are refused both ways), and they stop seeing your presence and typing. Group chats you share stay shared.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      await blockUser(ctx.prisma, requireViewer(ctx).userId, String(args.userId));
      return true;
    },
  }),
  unblockUser: t.boolean({
    description: 'Unblocks a user; false if they were not blocked.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => unblockUser(ctx.prisma, requireViewer(ctx).userId, String(args.userId)),
  }),
}));
