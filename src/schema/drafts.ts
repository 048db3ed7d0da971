// Drafts: saveDraft, Chat.draft, and draftEvents across the viewer's devices.
import { requireViewer } from '../auth/authenticate.ts';
import { DRAFT_MAX_LENGTH, draftText, saveDraft } from '../chats/drafts.ts';
import type { DraftTopicEvent } from '../realtime/events.ts';
import { draftStream } from '../realtime/read-state-stream.ts';
import { builder } from './builder.ts';

const DraftRef = builder.prismaObject('ChatDraft', {
  name: 'Draft',
  description: 'What you typed in a chat but have not sent, the same on all your devices.',
  fields: (t) => ({
    text: t.string({
      description: `Up to ${DRAFT_MAX_LENGTH} characters (stored encrypted, as message text is).`,
      select: { chatId: true, userId: true, content: true, contentKeyId: true },
      resolve: (draft, _args, ctx) => draftText(draft, (item) => ctx.loaders.plaintext.load(item)),
    }),
    replyTo: t.relation('replyTo', { nullable: true, description: 'The message the draft replies to.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When it was last saved.' }),
  }),
});

builder.prismaObjectField('Chat', 'draft', (t) =>
  t.field({
    type: DraftRef,
    nullable: true,
    description: 'Your draft in this chat; null when there is none (or it was sent).',
    extensions: { viewerDependent: true },
    select: { id: true },
    resolve: (chat, _args, ctx) => ctx.loaders.draft.load(chat.id),
  }),
);

const DraftEventRef = builder.objectRef<DraftTopicEvent>('DraftEvent').implement({
  description: 'Your draft in a chat was saved or cleared, on this device or another.',
  fields: (t) => ({
    chatId: t.id({ description: 'The chat whose draft changed.', resolve: (event) => event.chatId }),
    draft: t.field({
      type: DraftRef,
      nullable: true,
      description: 'The draft as it is now; null once cleared (emptied, or sent).',
      extensions: { viewerDependent: true },
      resolve: (event, _args, ctx) => ctx.loaders.draft.load(event.chatId),
    }),
  }),
});

builder.mutationFields((t) => ({
  saveDraft: t.prismaField({
    type: 'Chat',
    description: `Saves your draft in a chat for all your devices (up to ${DRAFT_MAX_LENGTH} characters); an empty text without replyToId clears it. Sending a message in the chat clears it too. Not in end-to-end encrypted chats.`,
    args: {
      chatId: t.arg.id({ required: true, description: 'A chat you are in.' }),
      text: t.arg.string({ required: false, description: 'What you typed; empty or null for nothing.' }),
      replyToId: t.arg.id({ required: false, description: 'A message of the chat the draft replies to.' }),
    },
    resolve: async (query, _root, args, ctx) => {
      const viewerId = requireViewer(ctx).userId;
      await ctx.rateLimits.consume('typing', viewerId);
      await saveDraft(ctx, viewerId, String(args.chatId), args.text, args.replyToId == null ? null : String(args.replyToId));
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
}));

builder.subscriptionFields((t) => ({
  draftEvents: t.field({
    type: DraftEventRef,
    description: 'Your drafts saved and cleared, in every chat you are in, from any of your devices (this one too). Not replayed: read Chat.draft after reconnecting.',
    subscribe: (_root, _args, ctx) => draftStream(ctx, requireViewer(ctx).userId),
    resolve: (event) => event,
  }),
}));
