// Push notifications: VAPID key, device registration, muting chats.
import { requireViewer } from '../auth/authenticate.ts';
import { muteChat, registerPushSubscription, unmuteChat, unregisterPushSubscription } from '../notifications/subscriptions.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';

builder.prismaObject('PushSubscription', {
  interfaces: [NodeRef],
  description: "A device's Web Push subscription.",
  fields: (t) => ({
    endpoint: t.exposeString('endpoint', { description: 'The push service URL the browser gave.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was first registered.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When it was last registered again (keys or session changed).' }),
  }),
});

const PushKeysInput = builder.inputType('PushKeysInput', {
  description: "A push subscription's keys (RFC 8291), as PushSubscription.toJSON().keys gives them.",
  fields: (t) => ({
    p256dh: t.string({ required: true, description: "The subscription's P-256 public key, base64url (PushSubscription.getKey('p256dh'))." }),
    auth: t.string({ required: true, description: 'The 16-byte auth secret, base64url.' }),
  }),
});

const PushSubscriptionInput = builder.inputType('PushSubscriptionInput', {
  description: "This device's Web Push subscription (PushSubscription.toJSON()).",
  fields: (t) => ({
    endpoint: t.string({ required: true, description: 'The push service URL (https).' }),
    keys: t.field({ type: PushKeysInput, required: true, description: 'Its encryption keys.' }),
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
    args: { input: t.arg({ type: PushSubscriptionInput, required: true, description: 'The subscription pushManager.subscribe() gave.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const subscription = await registerPushSubscription(ctx, requireViewer(ctx), input);
      return ctx.prisma.pushSubscription.findUniqueOrThrow({ ...query, where: { id: subscription.id } });
    },
  }),
  unregisterPushSubscription: t.boolean({
    description: 'Stops pushes to this endpoint; false if it was not registered by you.',
    args: { endpoint: t.arg.string({ required: true, description: 'The subscription\'s push service URL.' }) },
    resolve: (_root, args, ctx) => unregisterPushSubscription(ctx, requireViewer(ctx), args.endpoint),
  }),
  muteChat: t.prismaField({
    type: 'Chat',
    description: 'No push notifications from this chat until `until` (or until unmuted).',
    args: { chatId: t.arg.id({ required: true, description: 'The chat\'s id.' }), until: t.arg({ type: 'DateTime', required: false, description: 'Muted until then; omitted or null: until unmuteChat.' }) },
    resolve: async (query, _root, args, ctx) => {
      await muteChat(ctx, requireViewer(ctx).userId, String(args.chatId), args.until);
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
  unmuteChat: t.prismaField({
    type: 'Chat',
    description: 'Turns push notifications from this chat back on.',
    args: { chatId: t.arg.id({ required: true, description: 'The chat\'s id.' }) },
    resolve: async (query, _root, args, ctx) => {
      await unmuteChat(ctx, requireViewer(ctx).userId, String(args.chatId));
      return ctx.prisma.chat.findUniqueOrThrow({ ...query, where: { id: String(args.chatId) } });
    },
  }),
}));
