// Messages: every kind, replies, edits with history, soft deletes, read state.
import { requireViewer } from '../auth/authenticate.ts';
import type { Context } from '../context.ts';
import type { MessageKind } from '../generated/prisma/enums.ts';
import { decodeContent, editAad, messageAad, type Location, type MessageContent } from '../messages/content.ts';
import { deleteMessage, editMessage, markRead, sendMessage, TEXT_MAX_LENGTH } from '../messages/messages.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';
import { UserRef } from './users.ts';

export const MessageKindEnum = builder.enumType('MessageKind', {
  description: 'What a message carries (and what an upload is for).',
  values: {
    TEXT: { description: 'Text only.' },
    IMAGE: { description: 'A picture (an attachment with a thumbnail), with an optional caption.' },
    FILE: { description: 'Any file, with an optional caption.' },
    VOICE: { description: 'A voice recording, with an optional caption.' },
    LOCATION: { description: 'A place on the map.' },
    CALL: { description: 'A call in the timeline (written by the server; `call` has its state).' },
  } satisfies Record<MessageKind, unknown>,
});

export const LocationRef = builder.objectRef<Location>('Location').implement({
  description: 'A point on Earth (WGS 84).',
  fields: (t) => ({
    latitude: t.exposeFloat('latitude', { description: 'Degrees north, -90 to 90.' }),
    longitude: t.exposeFloat('longitude', { description: 'Degrees east, -180 to 180.' }),
  }),
});

/** Opens a message's sealed content through the request's batch loader (one decryption batch per page). */
async function contentOf(
  ctx: Context,
  message: { id: string; content: Uint8Array | null; contentKeyId: string | null },
): Promise<MessageContent | null> {
  if (!message.content || !message.contentKeyId) return null;
  const plaintext = await ctx.loaders.plaintext.load({
    aad: messageAad(message.id),
    keyId: message.contentKeyId,
    ciphertext: message.content,
  });
  return decodeContent(plaintext);
}

builder.prismaObject('MessageEdit', {
  interfaces: [NodeRef],
  description: 'An earlier version of an edited message.',
  fields: (t) => ({
    text: t.string({
      nullable: true,
      description: 'The text the message had before this edit.',
      resolve: async (edit, _args, ctx) => {
        const plaintext = await ctx.loaders.plaintext.load({ aad: editAad(edit.id), keyId: edit.contentKeyId, ciphertext: edit.content });
        return decodeContent(plaintext).text;
      },
    }),
    editedAt: t.expose('editedAt', { type: 'DateTime', description: 'When this text was replaced.' }),
  }),
});

export const MessageRef = builder.prismaObject('Message', {
  interfaces: [NodeRef],
  description: 'A message in a chat.',
  fields: (t) => ({
    seq: t.exposeInt('seq', {
      description: 'Position in the chat (1, 2, 3, ... without gaps). Catch up after a reconnect from the last one you saw.',
    }),
    chat: t.relation('chat', { description: 'The chat it was sent in.' }),
    sender: t.relation('sender', { description: 'Who sent it.' }),
    kind: t.expose('kind', { type: MessageKindEnum, description: 'What it carries.' }),
    text: t.string({
      nullable: true,
      description: `Text, or the caption of a media message (up to ${TEXT_MAX_LENGTH} characters). Null once deleted.`,
      resolve: async (message, _args, ctx) => (await contentOf(ctx, message))?.text ?? null,
    }),
    location: t.field({
      type: LocationRef,
      nullable: true,
      description: 'For LOCATION messages. Null once deleted.',
      resolve: async (message, _args, ctx) => (await contentOf(ctx, message))?.location ?? null,
    }),
    attachment: t.relation('attachment', { nullable: true, description: 'For IMAGE, FILE and VOICE messages.' }),
    call: t.relation('call', { nullable: true, description: 'For CALL messages: the call, as it stands (media, state, endReason, durationSeconds).' }),
    replyTo: t.relation('replyTo', { nullable: true, description: 'The message this one answers, in the same chat; null for none (or once that one is gone).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was sent.' }),
    editedAt: t.expose('editedAt', { type: 'DateTime', nullable: true, description: 'When it was last edited; null if never.' }),
    deletedAt: t.expose('deletedAt', { type: 'DateTime', nullable: true, description: 'Set when deleted; the content is gone.' }),
    clientMessageId: t.exposeString('clientMessageId', { nullable: true, description: "The sender's own id for the send (SendMessageInput.clientMessageId), if it gave one." }),
    edits: t.relation('edits', { description: 'Earlier versions, oldest first.', query: { orderBy: { editedAt: 'asc' } } }),
    readBy: t.field({
      type: [UserRef],
      nullable: true,
      description: 'Members (other than the sender) who have read this far. Null in chats over 50 members.',
      resolve: async (message, _args, ctx) => {
        const readers = await ctx.loaders.chatReaders.load(message.chatId);
        return readers?.filter((r) => r.lastReadSeq >= message.seq && r.user.id !== message.senderId).map((r) => r.user) ?? null;
      },
    }),
  }),
});

export const LocationInput = builder.inputType('LocationInput', {
  description: 'A point on Earth (WGS 84).',
  fields: (t) => ({
    latitude: t.float({ required: true, description: '-90 to 90.' }),
    longitude: t.float({ required: true, description: '-180 to 180.' }),
  }),
});

const SendMessageInput = builder.inputType('SendMessageInput', {
  description: 'A message to send: the fields its kind needs.',
  fields: (t) => ({
    chatId: t.id({ required: true, description: 'A chat you are in (not an end-to-end encrypted one).' }),
    kind: t.field({ type: MessageKindEnum, required: true, description: 'What it carries; CALL is the server\'s.' }),
    text: t.string({ required: false, description: `TEXT: required. IMAGE/FILE/VOICE: optional caption. Up to ${TEXT_MAX_LENGTH} characters.` }),
    attachmentId: t.id({ required: false, description: 'IMAGE/FILE/VOICE: an attachment you uploaded.' }),
    location: t.field({ type: LocationInput, required: false, description: 'LOCATION: required.' }),
    replyToId: t.id({ required: false, description: 'A message in the same chat.' }),
    threadRootId: t.id({
      required: false,
      description: 'Post into the thread under this message: a live message of the same chat that is not itself a thread reply.',
    }),
    clientMessageId: t.string({
      required: false,
      description: 'Your id for this send (up to 64 characters): retrying with it returns the first message instead of a duplicate.',
    }),
  }),
});

builder.mutationFields((t) => ({
  sendMessage: t.prismaField({
    type: 'Message',
    description: 'Sends a message to a chat you are in.',
    args: { input: t.arg({ type: SendMessageInput, required: true, description: 'The message.' }) },
    // The inserted row is returned as is: relations the client selects are loaded (batched) by Pothos.
    resolve: async (_query, _root, { input }, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('sendMessage', `${viewerId}:${String(input.chatId)}`);
      await ctx.rateLimits.consume('sendMessageTotal', viewerId);
      return sendMessage(ctx, viewerId, input);
    },
  }),
  editMessage: t.prismaField({
    type: 'Message',
    description: 'Changes the text or caption of your own message; the earlier text goes to `edits`.',
    args: { id: t.arg.id({ required: true, description: 'Your message\'s id.' }), text: t.arg.string({ required: true, description: `The new text or caption (up to ${TEXT_MAX_LENGTH} characters).` }) },
    resolve: async (query, _root, args, ctx) => {
      const message = await editMessage(ctx, requireViewer(ctx).userId, String(args.id), args.text);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  deleteMessage: t.prismaField({
    type: 'Message',
    description: 'Deletes a message (yours, or any as a group OWNER/ADMIN). The row stays with `deletedAt` set; its content is erased.',
    args: { id: t.arg.id({ required: true, description: 'The message\'s id.' }) },
    resolve: async (query, _root, args, ctx) => {
      const message = await deleteMessage(ctx, requireViewer(ctx).userId, String(args.id));
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
  markRead: t.prismaField({
    type: 'Chat',
    description:
      'Marks the chat read up to this message. Read state never moves backwards. In an encrypted chat, the envelopes up to it addressed to this device are deleted.',
    args: { chatId: t.arg.id({ required: true, description: 'The chat\'s id.' }), messageId: t.arg.id({ required: true, description: 'The newest message you read, in that chat.' }) },
    resolve: async (query, _root, args, ctx) => {
      const viewer = requireViewer(ctx);
      await markRead(ctx, viewer.userId, String(args.chatId), String(args.messageId), viewer.sessionId);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
}));
