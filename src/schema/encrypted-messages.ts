// End-to-end encrypted messages: sending and editing them as per-device envelopes, and
// Message.envelope, the one addressed to the device asking.
import { requireViewer } from '../auth/authenticate.ts';
import { encodeBase64 } from '../devices/keys.ts';
import type { EnvelopeType, MessageEnvelope } from '../generated/prisma/client.ts';
import { editEncryptedMessage, sendEncryptedMessage } from '../messages/encrypted.ts';
import { ENVELOPE_MAX_BYTES } from '../messages/envelopes.ts';
import { builder } from './builder.ts';
import { MessageKindEnum } from './messages.ts';

const EnvelopeTypeEnum = builder.enumType('EnvelopeType', {
  description: 'PREKEY_MESSAGE: the first messages of a new session, carrying the X3DH header; MESSAGE: a plain Double Ratchet message.',
  values: {
    PREKEY_MESSAGE: { description: 'One of the first messages of a new session, with the X3DH header.' },
    MESSAGE: { description: 'A plain Double Ratchet message.' },
  } satisfies Record<EnvelopeType, unknown>,
});

const EnvelopeRef = builder.objectRef<MessageEnvelope>('Envelope').implement({
  description: 'The ciphertext of an encrypted message for one device, as its sender made it.',
  fields: (t) => ({
    type: t.field({ type: EnvelopeTypeEnum, description: 'How to open it.', resolve: (envelope) => envelope.type }),
    ciphertext: t.string({ description: 'Standard base64, exactly as sent.', resolve: (envelope) => encodeBase64(envelope.ciphertext) }),
    senderDeviceId: t.id({
      description: 'The device that encrypted it (the sender’s, or the one that edited the message): decrypt with your session with it.',
      resolve: (envelope) => envelope.senderDeviceId,
    }),
    senderDevice: t.prismaField({
      type: 'Device',
      nullable: true,
      description: 'That device, with its identity key; null once it is gone (logged out).',
      resolve: (query, envelope, _args, ctx) => ctx.prisma.device.findUnique({ ...query, where: { id: envelope.senderDeviceId } }),
    }),
  }),
});

builder.prismaObjectField('Message', 'envelope', (t) =>
  t.field({
    type: EnvelopeRef,
    nullable: true,
    description:
      'Encrypted chats: the envelope addressed to the device asking, until that device marks the message read (or ENCRYPTED_ENVELOPE_RETENTION passes). Other devices’ envelopes are never shown. Null in plaintext chats.',
    extensions: { viewerDependent: 'session' },
    select: { content: true },
    // A plaintext message has content (until deleted): no envelope to look for.
    resolve: (message, _args, ctx) => (message.content ? null : ctx.loaders.envelope.load(message.id)),
  }),
);

const EnvelopeInput = builder.inputType('EnvelopeInput', {
  description: "A message's ciphertext for one device.",
  fields: (t) => ({
    deviceId: t.id({ required: true, description: 'The recipient device (Device.id).' }),
    type: t.field({ type: EnvelopeTypeEnum, required: true, description: 'How the device opens it.' }),
    ciphertext: t.string({ required: true, description: `Standard base64, 1 to ${ENVELOPE_MAX_BYTES} bytes; stored as sent.` }),
  }),
});

const ENVELOPES_DESCRIPTION =
  'One per current device of every member, your own other devices included, and none other: else CONFLICT with `missingDeviceIds` (fetch their bundles; `missingDevices` pairs each with its `userId`) and `extraDeviceIds`.';

const SendEncryptedMessageInput = builder.inputType('SendEncryptedMessageInput', {
  description: 'An end-to-end encrypted message: envelopes, one per device.',
  fields: (t) => ({
    chatId: t.id({ required: true, description: 'An encrypted chat you are in.' }),
    clientMessageId: t.string({ required: false, description: 'As for sendMessage: retrying with it returns the first message instead of a duplicate.' }),
    kind: t.field({ type: MessageKindEnum, required: true, description: 'Visible to the server, like the message’s time and size.' }),
    envelopes: t.field({ type: [EnvelopeInput], required: true, description: ENVELOPES_DESCRIPTION }),
    replyToId: t.id({ required: false, description: 'A message in the same chat.' }),
    attachmentId: t.id({
      required: false,
      description: 'IMAGE/FILE/VOICE: a file you encrypted and uploaded with uploadFile(encrypted: true); its key travels in the envelopes.',
    }),
  }),
});

const EditEncryptedMessageInput = builder.inputType('EditEncryptedMessageInput', {
  description: 'New content for an end-to-end encrypted message of yours.',
  fields: (t) => ({
    id: t.id({ required: true, description: 'Your encrypted message.' }),
    envelopes: t.field({ type: [EnvelopeInput], required: true, description: `The new content. ${ENVELOPES_DESCRIPTION}` }),
  }),
});

builder.mutationFields((t) => ({
  sendEncryptedMessage: t.prismaField({
    type: 'Message',
    description:
      'Sends a message to an end-to-end encrypted chat from this device, as one envelope per recipient device. The server stores the ciphertexts as received and cannot read them.',
    args: { input: t.arg({ type: SendEncryptedMessageInput, required: true, description: 'The message as envelopes, one per device.' }) },
    resolve: async (_query, _root, { input }, ctx) => {
      const viewer = requireViewer(ctx);
      // The same budgets as sendMessage: an encrypted chat is no way around them.
      await ctx.rateLimits.consume('sendMessage', `${viewer.userId}:${String(input.chatId)}`);
      await ctx.rateLimits.consume('sendMessageTotal', viewer.userId);
      return sendEncryptedMessage(ctx, viewer, input);
    },
  }),
  editEncryptedMessage: t.prismaField({
    type: 'Message',
    description: 'Replaces the envelopes of your encrypted message with new ones (an edit); members get EDITED.',
    args: { input: t.arg({ type: EditEncryptedMessageInput, required: true, description: 'The message and its new envelopes.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const message = await editEncryptedMessage(ctx, requireViewer(ctx), input);
      return ctx.prisma.message.findUniqueOrThrow({ ...query, where: { id: message.id } });
    },
  }),
}));
