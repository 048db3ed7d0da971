// Users: profiles, status, search.
import { requireViewer } from '../auth/authenticate.ts';
import { THUMBNAIL_MAX_PX } from '../files/image-limits.ts';
import { viewerFileUrl } from '../files/signed-urls.ts';
import type { UserStatus } from '../generated/prisma/enums.ts';
import { activeUsers, deletedUsername } from '../users/deleted-accounts.ts';
import { effectiveStatus } from '../users/status.ts';
import { setStatus, updateProfile, userSearchFilter } from '../users/profile.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';
import { pageSizeFor } from './pagination.ts';

export const UserStatusEnum = builder.enumType('UserStatus', {
  description: 'What a user shows others. ONLINE/OFFLINE follow live connections; BUSY and AWAY are chosen.',
  values: {
    ONLINE: { description: 'Connected and available.' },
    OFFLINE: { description: 'Not connected. Chosen with setStatus: appear offline while connected.' },
    BUSY: { description: 'Connected, but does not want to be disturbed.' },
    AWAY: { description: 'Connected, but away from the device.' },
  } satisfies Record<UserStatus, unknown>,
});

export const UserRef = builder.prismaObject('User', {
  interfaces: [NodeRef],
  description: 'A person with an account.',
  fields: (t) => ({
    username: t.string({
      description: 'Unique, lower-case handle. For a deleted account `deleted_<id>`, a handle nobody can register.',
      select: { id: true, username: true, deletedAt: true },
      resolve: (user) => (user.deletedAt ? deletedUsername(user.id) : user.username),
    }),
    deleted: t.boolean({
      description:
        'Whether this account was deleted. Its messages stay in their chats with their content erased, its name reads "Deleted account" (show your own words), it has no picture and is always OFFLINE.',
      select: { deletedAt: true },
      resolve: (user) => user.deletedAt !== null,
    }),
    displayName: t.exposeString('displayName', { description: 'The name to show (1 to 64 characters); "Deleted account" for a deleted one.' }),
    bio: t.exposeString('bio', { nullable: true, description: 'A few words about the user (up to 500 characters); null when not set.' }),
    avatarUrl: t.string({
      nullable: true,
      description: `A link to the profile picture as a WebP of at most ${THUMBNAIL_MAX_PX} px, served by this API and signed for you like Attachment.thumbnailUrl (valid FILE_URL_TTL); null without a picture.`,
      select: { avatarAttachmentId: true },
      extensions: { viewerDependent: true },
      resolve: (user, _args, ctx) =>
        user.avatarAttachmentId && ctx.viewer
          ? viewerFileUrl(ctx.config, ctx.origin, { attachmentId: user.avatarAttachmentId, variant: 'thumbnail', viewerId: ctx.viewer.userId })
          : null,
    }),
    avatar: t.relation('avatar', {
      nullable: true,
      description: 'The profile picture as an upload: `url` for the full size, `width` and `height`. Null without a picture.',
    }),
    status: t.field({
      type: UserStatusEnum,
      description:
        'What others see: OFFLINE without a live connection; with one, ONLINE or the BUSY/AWAY chosen with setStatus. Always OFFLINE to users this user blocked.',
      extensions: { viewerDependent: true },
      resolve: async (user, _args, ctx) => {
        if (user.deletedAt || (await ctx.loaders.blockedViewer.load(user.id))) return 'OFFLINE';
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
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the account was registered.' }),
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
export const UserConnection = builder.connectionObject({ type: UserRef, name: 'UserConnection' }, { name: 'UserEdge' });

const UpdateProfileInput = builder.inputType('UpdateProfileInput', {
  description: 'Fields to change; omitted fields stay as they are, null clears bio or the profile picture.',
  fields: (t) => ({
    displayName: t.string({ required: false, description: 'Up to 64 characters.' }),
    bio: t.string({ required: false, description: 'Up to 500 characters.' }),
    avatarAttachmentId: t.id({
      required: false,
      description: 'Your profile picture: the id of an image you uploaded with uploadFile(kind: IMAGE). Null removes the picture.',
    }),
    avatarUrl: t.string({
      required: false,
      description: 'Only null, which removes the profile picture.',
      deprecationReason: 'Profile pictures are uploads: use avatarAttachmentId. Only null (removes the picture) is still accepted; a URL is BAD_USER_INPUT.',
    }),
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
    args: { id: t.arg.id({ required: true, description: 'The user\'s id.' }) },
    resolve: async (query, _root, { id }, ctx) => {
      requireViewer(ctx);
      return (await ctx.reader()).user.findUnique({ ...query, where: { id: String(id) } });
    },
  }),
  searchUsers: t.prismaConnection(
    {
      type: 'User',
      cursor: 'username',
      description:
        'Users whose username starts with, or whose display name contains, `query` (taken literally: `%` and `_` match only themselves); ordered by username. Users who blocked you and deleted accounts are not found.',
      defaultSize: 20,
      maxSize: pageSizeFor,
      args: { query: t.arg.string({ required: true, description: 'What to look for: 1 to 100 characters.' }) },
      resolve: async (query, _root, args, ctx) => {
        const viewerId = requireViewer(ctx).userId;
        await ctx.rateLimits.consume('search', viewerId);
        return (await ctx.reader()).user.findMany({ ...query, where: { ...userSearchFilter(args.query, viewerId), ...activeUsers }, orderBy: { username: 'asc' } });
      },
    },
    UserConnection,
  ),
}));

builder.mutationFields((t) => ({
  updateProfile: t.prismaField({
    type: 'User',
    description: "Changes the signed-in user's profile.",
    args: { input: t.arg({ type: UpdateProfileInput, required: true, description: 'The fields to change.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const user = await updateProfile(ctx.prisma, requireViewer(ctx).userId, input);
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: user.id } });
    },
  }),
  setStatus: t.prismaField({
    type: 'User',
    description: "Sets the signed-in user's status.",
    args: { status: t.arg({ type: UserStatusEnum, required: true, description: 'What to show while connected.' }) },
    resolve: async (query, _root, { status }, ctx) => {
      const user = await setStatus(ctx, requireViewer(ctx).userId, status);
      return ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: user.id } });
    },
  }),
}));
