// Contacts and blocking.
import { resolveOffsetConnection } from '@pothos/plugin-relay';
import { requireViewer } from '../auth/authenticate.ts';
import { addContact, blocksBy, blockUser, CONTACTS_BY_USERNAME, contactsOf, removeContact, unblockUser } from '../users/contacts.ts';
import { builder } from './builder.ts';
import { pageSizeFor } from './pagination.ts';
import { UserConnection, UserRef } from './users.ts';

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
  blockedUsers: t.connection(
    {
      type: UserRef,
      description: 'Users you blocked, most recent first.',
      // Ordered by the block, not by a column of User: offset cursors (a short list that changes rarely).
      resolve: (_root, args, ctx) => {
        const { where, orderBy } = blocksBy(requireViewer(ctx).userId);
        return resolveOffsetConnection({ args, defaultSize: 50, maxSize: pageSizeFor(args) }, async ({ offset, limit }) => {
          const blocks = await ctx.prisma.userBlock.findMany({ where, orderBy, skip: offset, take: limit, include: { blocked: true } });
          return blocks.map((block) => block.blocked);
        });
      },
    },
    UserConnection,
  ),
}));

builder.mutationFields((t) => ({
  addContact: t.prismaField({
    type: 'User',
    description: 'Adds a user to your contacts.',
    args: { userId: t.arg.id({ required: true, description: 'The user to add.' }) },
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('addContact', viewerId);
      await addContact(ctx.prisma, viewerId, String(args.userId));
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: String(args.userId) } });
    },
  }),
  removeContact: t.boolean({
    description: 'Removes a user from your contacts; false if they were not in them.',
    args: { userId: t.arg.id({ required: true, description: 'The contact to remove.' }) },
    resolve: (_root, args, ctx) => removeContact(ctx.prisma, requireViewer(ctx).userId, String(args.userId)),
  }),
  blockUser: t.boolean({
    description:
      'Blocks a user: no direct chat between you (new messages in an existing one are refused both ways), and they stop seeing your presence and typing. Group chats you share stay shared.',
    args: { userId: t.arg.id({ required: true, description: 'The user to block.' }) },
    resolve: async (_root, args, ctx) => {
      await blockUser(ctx.prisma, requireViewer(ctx).userId, String(args.userId));
      return true;
    },
  }),
  unblockUser: t.boolean({
    description: 'Unblocks a user; false if they were not blocked.',
    args: { userId: t.arg.id({ required: true, description: 'The user to unblock.' }) },
    resolve: (_root, args, ctx) => unblockUser(ctx.prisma, requireViewer(ctx).userId, String(args.userId)),
  }),
}));
