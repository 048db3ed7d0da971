// Chats: direct and group conversations, membership and roles.
import {
  ADD_MEMBERS_MAX,
  addChatMembers,
  createChat,
  joinChat,
  leaveChat,
  removeChatMember,
  setChatMemberRole,
  updateChat,
} from '../chats/chats.ts';
import { CHATS_BY_ACTIVITY, chatOfMember, chatsOfMember } from '../chats/membership.ts';
import { requireViewer } from '../auth/authenticate.ts';
import type { ChatKind, ChatRole } from '../generated/prisma/enums.ts';
import { builder } from './builder.ts';
import { MessageConnection } from './message-connection.ts';
import { NodeRef } from './node.ts';
import { pageSizeFor } from './pagination.ts';

export const ChatKindEnum = builder.enumType('ChatKind', {
  description: 'Whether a chat is between two people or a group.',
  values: {
    DIRECT: { description: 'Two people; a pair has one (one more if end-to-end encrypted). No title, no roles to manage.' },
    GROUP: { description: 'Any number of members, a title, roles; public groups can be joined by id.' },
  } satisfies Record<ChatKind, unknown>,
});
export const ChatRoleEnum = builder.enumType('ChatRole', {
  description: 'OWNER and ADMIN manage members; OWNER also changes roles.',
  values: {
    OWNER: { description: 'Manages members and roles; a group always has at least one.' },
    ADMIN: { description: 'Adds members, removes plain members, edits the group and deletes messages.' },
    MEMBER: { description: 'Reads and writes.' },
  } satisfies Record<ChatRole, unknown>,
});

builder.prismaObject('ChatMember', {
  interfaces: [NodeRef],
  description: "A user's membership of a chat.",
  fields: (t) => ({
    user: t.relation('user', { description: 'The member.' }),
    role: t.expose('role', { type: ChatRoleEnum, description: 'What the member may do in the chat.' }),
    joinedAt: t.expose('joinedAt', { type: 'DateTime', description: 'When the member joined or was added.' }),
  }),
});

builder.prismaObject('Chat', {
  interfaces: [NodeRef],
  description: 'A direct (two people) or group conversation. Visible to its members only.',
  fields: (t) => ({
    kind: t.expose('kind', { type: ChatKindEnum, description: 'Direct or group.' }),
    title: t.exposeString('title', { nullable: true, description: 'Group title; null for direct chats.' }),
    isPublic: t.exposeBoolean('isPublic', { description: 'Public groups can be joined by anyone who knows their id.' }),
    encrypted: t.exposeBoolean('encrypted', {
      description: 'End-to-end encrypted: messages are per-device envelopes the server cannot read (sendEncryptedMessage, Message.envelope).',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the chat was created.' }),
    lastActivityAt: t.expose('lastActivityAt', { type: 'DateTime', description: 'Creation or newest message.' }),
    members: t.relatedConnection(
      'members',
      {
        cursor: 'chatId_userId',
        description: 'Members, longest-standing first.',
        defaultSize: 50,
        maxSize: pageSizeFor,
        query: { orderBy: [{ joinedAt: 'asc' }, { userId: 'asc' }] },
      },
      { name: 'ChatMemberConnection' },
      { name: 'ChatMemberEdge' },
    ),
    myRole: t.field({
      type: ChatRoleEnum,
      nullable: true,
      description: "The viewer's role; null if the viewer is no longer a member.",
      extensions: { viewerDependent: true },
      resolve: async (chat, _args, ctx) => (await ctx.loaders.membership.load(chat.id))?.role ?? null,
    }),
    unreadCount: t.int({
      description: "Messages of the main timeline after the viewer's read position, sent by others and not deleted (thread replies are not counted; their mentions are, in unreadMentionCount).",
      extensions: { viewerDependent: true },
      resolve: (chat, _args, ctx) => ctx.loaders.unreadCount.load(chat.id),
    }),
    lastReadMessageId: t.id({
      nullable: true,
      description: 'The newest message the viewer marked read.',
      extensions: { viewerDependent: true },
      resolve: async (chat, _args, ctx) => (await ctx.loaders.membership.load(chat.id))?.lastReadMessageId ?? null,
    }),
    mutedUntil: t.field({
      type: 'DateTime',
      nullable: true,
      description: "Until when the viewer muted this chat's push notifications; null when not muted.",
      extensions: { viewerDependent: true },
      resolve: async (chat, _args, ctx) => {
        const mutedUntil = (await ctx.loaders.membership.load(chat.id))?.mutedUntil ?? null;
        return mutedUntil && mutedUntil > new Date() ? mutedUntil : null;
      },
    }),
    lastMessage: t.relation('lastMessage', { nullable: true, description: 'The newest message (possibly deleted).' }),
    messages: t.relatedConnection(
      'messages',
      {
        cursor: 'chatId_seq',
        description:
          'History in send order. `last: n` gives the newest n; page back with `before`, forward with `after` (opaque cursors, stable under concurrent sends).',
        defaultSize: 50,
        maxSize: pageSizeFor,
        args: {
          includeThreadReplies: t.arg.boolean({
            defaultValue: false,
            description: 'Also list thread replies (they keep their place in the seq order). Default false: the main timeline.',
          }),
        },
        query: (args) => ({ where: args.includeThreadReplies ? {} : { threadRootId: null }, orderBy: { seq: 'asc' } }),
      },
      MessageConnection,
    ),
  }),
});

const CreateChatInput = builder.inputType('CreateChatInput', {
  description: 'A new chat.',
  fields: (t) => ({
    kind: t.field({ type: ChatKindEnum, required: true, description: 'Direct or group.' }),
    title: t.string({ required: false, description: 'Required for groups (up to 128 characters); none for direct chats.' }),
    memberIds: t.idList({
      required: true,
      description: 'The other members. Exactly one for a direct chat; the viewer is always added.',
    }),
    isPublic: t.boolean({ required: false, description: 'Groups only. Default false.' }),
    encrypted: t.boolean({
      required: false,
      description: 'End-to-end encrypted (default false): only sendEncryptedMessage writes into it. A pair has one plaintext and one encrypted direct chat.',
    }),
  }),
});

const UpdateChatInput = builder.inputType('UpdateChatInput', {
  description: "A group's settings to change; omitted ones stay as they are.",
  fields: (t) => ({
    title: t.string({ required: false, description: 'The new title (1 to 128 characters).' }),
    isPublic: t.boolean({ required: false, description: 'Whether anyone who knows the id may join.' }),
  }),
});

builder.queryFields((t) => ({
  chats: t.prismaConnection(
    {
      type: 'Chat',
      cursor: 'id',
      description: "The viewer's chats, most recent activity first.",
      defaultSize: 20,
      maxSize: pageSizeFor,
      resolve: (query, _root, _args, ctx) => {
        const { userId } = requireViewer(ctx);
        return ctx.prisma.chat.findMany({ ...query, where: chatsOfMember(userId), orderBy: CHATS_BY_ACTIVITY });
      },
    },
    { name: 'ChatConnection' },
    { name: 'ChatEdge' },
  ),
  chat: t.prismaField({
    type: 'Chat',
    nullable: true,
    description: 'A chat you are in; null when there is no such chat or you are not in it (the two look the same, so existence does not leak).',
    args: { id: t.arg.id({ required: true, description: "The chat's id." }) },
    resolve: async (query, _root, { id }, ctx) => {
      const { userId } = requireViewer(ctx);
      // With replicas, membership is checked on the primary too (a removed member loses access at
      // once); the chat and its history page may come from a replica.
      if (ctx.reads.replicated && !(await ctx.loaders.membership.load(String(id)))) return null;
      return (await ctx.reader()).chat.findFirst({ ...query, where: chatOfMember(String(id), userId) });
    },
  }),
}));

builder.mutationFields((t) => ({
  createChat: t.prismaField({
    type: 'Chat',
    description: 'Starts a chat. A direct chat that already exists is returned instead of a new one.',
    args: { input: t.arg({ type: CreateChatInput, required: true, description: 'The chat to start.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('createChat', viewerId);
      const chat = await createChat(ctx, viewerId, input);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: chat.id } });
    },
  }),
  joinChat: t.prismaField({
    type: 'Chat',
    description: 'Joins a public group.',
    args: { chatId: t.arg.id({ required: true, description: 'The public group\'s id.' }) },
    resolve: async (query, _root, args, ctx) => {
      const chat = await joinChat(ctx, requireViewer(ctx).userId, String(args.chatId));
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: chat.id } });
    },
  }),
  leaveChat: t.boolean({
    description: 'Leaves a group. If the last owner leaves, the oldest admin (else the oldest member) becomes owner.',
    args: { chatId: t.arg.id({ required: true, description: 'The group\'s id.' }) },
    resolve: async (_root, args, ctx) => {
      await leaveChat(ctx, requireViewer(ctx).userId, String(args.chatId));
      return true;
    },
  }),
  addChatMembers: t.prismaField({
    type: 'Chat',
    description: 'Adds users to a group (OWNER or ADMIN). Users already in it are skipped.',
    args: { chatId: t.arg.id({ required: true, description: 'The group\'s id.' }), userIds: t.arg.idList({ required: true, description: `The users to add (up to ${ADD_MEMBERS_MAX}).` }) },
    resolve: async (query, _root, args, ctx) => {
      await addChatMembers(ctx, requireViewer(ctx).userId, String(args.chatId), args.userIds);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
  removeChatMember: t.prismaField({
    type: 'Chat',
    description: 'Removes someone from a group: owners remove anyone, admins remove plain members.',
    args: { chatId: t.arg.id({ required: true, description: 'The group\'s id.' }), userId: t.arg.id({ required: true, description: 'The member to remove.' }) },
    resolve: async (query, _root, args, ctx) => {
      await removeChatMember(ctx, requireViewer(ctx).userId, String(args.chatId), String(args.userId));
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
  setChatMemberRole: t.prismaField({
    type: 'Chat',
    description: "Changes a member's role (OWNER only). A group always keeps at least one owner.",
    args: {
      chatId: t.arg.id({ required: true, description: 'The group\'s id.' }),
      userId: t.arg.id({ required: true, description: 'The member whose role changes.' }),
      role: t.arg({ type: ChatRoleEnum, required: true, description: 'The new role.' }),
    },
    resolve: async (query, _root, args, ctx) => {
      await setChatMemberRole(ctx, requireViewer(ctx).userId, String(args.chatId), String(args.userId), args.role);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
  updateChat: t.prismaField({
    type: 'Chat',
    description: "Changes a group's title or visibility (OWNER or ADMIN).",
    args: { chatId: t.arg.id({ required: true, description: 'The group\'s id.' }), input: t.arg({ type: UpdateChatInput, required: true, description: 'The settings to change.' }) },
    resolve: async (query, _root, args, ctx) => {
      await updateChat(ctx, requireViewer(ctx).userId, String(args.chatId), args.input);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
}));
