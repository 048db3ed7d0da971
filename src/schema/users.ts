// Users: profiles, status, search.
import { requireViewer } from '../auth/authenticate.ts';
import { UserStatus } from '../generated/prisma/enums.ts';
import { effectiveStatus } from '../users/status.ts';
import { setStatus, updateProfile, userSearchFilter } from '../users/profile.ts';
import { builder } from './builder.ts';
import { pageSizeFor } from './pagination.ts';

export const UserStatusEnum = builder.enumType(UserStatus, {
  name: 'UserStatus',
  description: 'What a user shows others. ONLINE/OFFLINE follow live connections; BUSY and AWAY are chosen.',
});

export const UserRef = builder.prismaObject('User', {
  description: 'A person with an account.',
  fields: (t) => ({
    id: t.exposeID('id'),
    username: t.exposeString('username', { description: 'Unique, lower-case handle.' }),
    displayName: t.exposeString('displayName'),
    bio: t.exposeString('bio', { nullable: true }),
    avatarUrl: t.exposeString('avatarUrl', { nullable: true }),
    status: t.field({
      type: UserStatusEnum,
      description:
        'What others see: OFFLINE without a live connection; with one, ONLINE or the BUSY/AWAY chosen with setStatus. Always OFFLINE to users this user blocked.',
      extensions: { viewerDependent: true },
      resolve: async (user, _args, ctx) => {
        if (await ctx.loaders.blockedViewer.load(user.id)) return 'OFFLINE';
        return effectiveStatus(user.status, await ctx.loaders.online.load(user.id));
      },
    }),
    chosenStatus: t.field({
      type: UserStatusEnum,
      nullable: true,
      description: 'The status this user chose with setStatus (shown while connected). Visible to that user only.',
      extensions: { viewerDependent: true },
      resolve: (user, _args, ctx) => (ctx.viewer?.userId === user.id ? user.status : null),
    }),
    lastSeenAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the user was last connected; null to users they blocked.',
      extensions: { viewerDependent: true },
      resolve: async (user, _args, ctx) => ((await ctx.loaders.blockedViewer.load(user.id)) ? null : user.lastSeenAt),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    email: t.string({
      nullable: true,
      description: "The user's email. Visible to that user only; null for everyone else.",
      select: { email: true },
      extensions: { viewerDependent: true },
      resolve: (user, _args, ctx) => (ctx.viewer?.userId === user.id ? user.email : null),
    }),
  }),
});

/** A page of users; shared by every list of users. */
export const UserConnection = builder.connectionObject({ type: UserRef, name: 'UserConnection' });

const UpdateProfileInput = builder.inputType('UpdateProfileInput', {
  description: 'Fields to change; omitted fields stay as they are, null clears bio or avatarUrl.',
  fields: (t) => ({
    displayName: t.string({ required: false, description: 'Up to 64 characters.' }),
    bio: t.string({ required: false, description: 'Up to 500 characters.' }),
    avatarUrl: t.string({ required: false, description: 'An http(s) URL.' }),
  }),
});

builder.queryFields((t) => ({
  me: t.prismaField({
    type: 'User',
    description: 'The signed-in user.',
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: requireViewer(ctx).userId } }),
  }),
  user: t.prismaField({
    type: 'User',
    nullable: true,
    description: 'A user by id, or null if there is none.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, { id }, ctx) => {
      requireViewer(ctx);
      return ctx.prisma.user.findUnique({ ...query, where: { id: String(id) } });
    },
  }),
  searchUsers: t.prismaConnection(
    {
      type: 'User',
      cursor: 'username',
      description:
        'Users whose username starts with, or whose display name contains, `query` (taken literally: `%` and `_` match only themselves); ordered by username. Users who blocked you are not found.',
      defaultSize: 20,
      maxSize: pageSizeFor,
      args: { query: t.arg.string({ required: true }) },
      resolve: (query, _root, args, ctx) =>
        ctx.prisma.user.findMany({ ...query, where: userSearchFilter(args.query, requireViewer(ctx).userId), orderBy: { username: 'asc' } }),
    },
    UserConnection,
  ),
}));

builder.mutationFields((t) => ({
  updateProfile: t.prismaField({
    type: 'User',
    description: "Changes the signed-in user's profile.",
    args: { input: t.arg({ type: UpdateProfileInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const user = await updateProfile(ctx.prisma, requireViewer(ctx).userId, input);
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: user.id } });
    },
  }),
  setStatus: t.prismaField({
    type: 'User',
    description: "Sets the signed-in user's status.",
    args: { status: t.arg({ type: UserStatusEnum, required: true }) },
    resolve: async (query, _root, { status }, ctx) => {
      const user = await setStatus(ctx, requireViewer(ctx).userId, status);
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: user.id } });
    },
  }),
}));
