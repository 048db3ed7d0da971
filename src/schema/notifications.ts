// Push notifications: VAPID key, device registration, muting chats.
import { requireViewer } from '../auth/authenticate.ts';
import { muteChat, registerPushSubscription, unmuteChat, unregisterPushSubscription } from '../notifications/subscriptions.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';

builder.prismaObject('PushSubscription', {
  interfaces: [NodeRef],
  description: "A device's Web Push subscription.",
  fields: (t) => ({
    id: t.exposeID('id'),
    endpoint: t.exposeString('endpoint'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const PushKeysInput = builder.inputType('PushKeysInput', {
  fields: (t) => ({
    p256dh: t.string({ required: true, description: "The subscription's P-256 public key, base64url (PushSubscription.getKey('p256dh'))." }),
    auth: t.string({ required: true, description: 'The 16-byte auth secret, base64url.' }),
  }),
});

const PushSubscriptionInput = builder.inputType('PushSubscriptionInput', {
  fields: (t) => ({
    endpoint: t.string({ required: true, description: 'The push service URL (https).' }),
    keys: t.field({ type: PushKeysInput, required: true }),
  }),
});

builder.queryFields((t) => ({
  vapidPublicKey: t.string({
    description: "The server's VAPID public key (base64url): pass it as applicationServerKey to pushManager.subscribe().",
    resolve: (_root, _args, ctx) => ctx.config.push.vapid.publicKey,
  }),
}));

builder.mutationFields((t) => ({
  registerPushSubscription: t.prismaField({
    type: 'PushSubscription',
    description:
      "Registers this device session for push notifications; registering the same endpoint again updates it. CONFLICT while another account's live session holds the endpoint (it is freed when that session ends: logging out removes the session's subscriptions).",
    args: { input: t.arg({ type: PushSubscriptionInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const subscription = await registerPushSubscription(ctx, requireViewer(ctx), input);
      return ctx.prisma.pushSubscription.findUniqueOrThrow({ ...query, where: { id: subscription.id } });
    },
  }),
  unregisterPushSubscription: t.boolean({
    description: 'Stops pushes to this endpoint; false if it was not registered by you.',
    args: { endpoint: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => unregisterPushSubscription(ctx, requireViewer(ctx), args.endpoint),
  }),
  muteChat: t.prismaField({
    type: 'Chat',
    description: 'No push notifications from this chat until `until` (or until unmuted).',
    args: { chatId: t.arg.id({ required: true }), until: t.arg({ type: 'DateTime', required: false }) },
    resolve: async (query, _root, args, ctx) => {
      await muteChat(ctx, requireViewer(ctx).userId, String(args.chatId), args.until);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
  unmuteChat: t.prismaField({
    type: 'Chat',
    description: 'Turns push notifications from this chat back on.',
    args: { chatId: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      await unmuteChat(ctx, requireViewer(ctx).userId, String(args.chatId));
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
}));
