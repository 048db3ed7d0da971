// End-to-end encryption keys: devices, pre-key bundles (X3DH), the sessions a user can see and end,
// and the deviceKeyEvents subscription.
import { requireViewer } from '../auth/authenticate.ts';
import { claimPreKeyBundles, type PreKeyBundle } from '../devices/bundles.ts';
import { currentDevice, ONE_TIME_PRE_KEYS_LOW, ONE_TIME_PRE_KEYS_MAX, uploadDeviceKeys } from '../devices/devices.ts';
import { encodeBase64 } from '../devices/keys.ts';
import { liveSessionsOf, revokeOtherSessions, revokeSession, SESSIONS_BY_LAST_SEEN } from '../devices/session-list.ts';
import type { DeviceKeyTopicEvent } from '../realtime/events.ts';
import { deviceKeyEventStream } from '../realtime/device-key-stream.ts';
import { builder } from './builder.ts';
import { NodeRef } from './node.ts';

const DEVICES_BY_AGE = [{ createdAt: 'asc' }, { id: 'asc' }] as const;

export const DeviceRef = builder.prismaObject('Device', {
  interfaces: [NodeRef],
  description:
    "A device that holds end-to-end encryption keys: a device session that uploaded them. Its id is the session's: node(id) answers it as a Device to others, as your DeviceSession to you.",
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The device session id (DeviceSession.id); envelopes are addressed to it.' }),
    user: t.relation('user', { description: "The device's user." }),
    identityKey: t.string({
      description: "The device's long-term Ed25519 public key, standard base64 of its 32 bytes. It never changes for a device.",
      resolve: (device) => encodeBase64(device.identityKey),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When the device first uploaded its keys.' }),
    lastSeenAt: t.field({
      type: 'DateTime',
      description: 'When the device session was last used (to within a minute).',
      select: { session: { select: { lastSeenAt: true } } },
      resolve: (device) => device.session.lastSeenAt,
    }),
    oneTimePreKeyCount: t.int({
      nullable: true,
      description: `One-time pre-keys the device has left (at most ${ONE_TIME_PRE_KEYS_MAX}); upload more when it falls below ${ONE_TIME_PRE_KEYS_LOW}. Visible for your own devices only; null for others'.`,
      extensions: { viewerDependent: true },
      select: { userId: true },
      resolve: (device, _args, ctx) => (device.userId === ctx.viewer?.userId ? ctx.loaders.oneTimePreKeyCount.load(device.id) : null),
    }),
  }),
});

builder.prismaObject('Session', {
  interfaces: [NodeRef],
  name: 'DeviceSession',
  description: 'A signed-in session of yours (a login on some device), with or without end-to-end encryption keys.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'End it with revokeSession(id). Equals its Device.id once it has keys.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it signed in.' }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime', description: 'Last request, connection or token refresh (to within a minute).' }),
    userAgent: t.exposeString('userAgent', { nullable: true, description: 'The User-Agent it signed in with.' }),
    current: t.boolean({
      description: 'Whether this is the session making the request.',
      extensions: { viewerDependent: 'session' },
      resolve: (session, _args, ctx) => session.id === ctx.viewer?.sessionId,
    }),
    device: t.relation('device', { nullable: true, description: 'Its encryption keys; null until it uploads them.' }),
  }),
});

const SignedPreKeyRef = builder.objectRef<PreKeyBundle['device']>('SignedPreKey').implement({
  description: "A device's current signed pre-key (X25519), signed by its identity key.",
  fields: (t) => ({
    keyId: t.int({ description: "The device's id for the key.", resolve: (device) => device.signedPreKeyId }),
    publicKey: t.string({ description: 'Standard base64 of the 32-byte X25519 public key.', resolve: (device) => encodeBase64(device.signedPreKey) }),
    signature: t.string({
      description: 'Standard base64 of the 64-byte Ed25519 signature of the raw publicKey by the identity key: verify it before use.',
      resolve: (device) => encodeBase64(device.signedPreKeySignature),
    }),
  }),
});

const OneTimePreKeyRef = builder.objectRef<NonNullable<PreKeyBundle['oneTimePreKey']>>('OneTimePreKey').implement({
  description: 'A one-time pre-key (X25519), claimed for you: nobody else ever gets it.',
  fields: (t) => ({
    keyId: t.exposeInt('keyId', { description: "The device's id for the key: name it in the first message." }),
    publicKey: t.string({ description: 'Standard base64 of the 32-byte X25519 public key.', resolve: (key) => encodeBase64(key.publicKey) }),
  }),
});

const PreKeyBundleRef = builder.objectRef<PreKeyBundle>('PreKeyBundle').implement({
  description: 'What X3DH needs to start an encrypted session with one device.',
  fields: (t) => ({
    device: t.field({ type: DeviceRef, description: 'The device these keys are for.', resolve: (bundle) => bundle.device }),
    identityKey: t.string({ description: 'Standard base64 of the Ed25519 identity key.', resolve: (bundle) => encodeBase64(bundle.device.identityKey) }),
    signedPreKey: t.field({ type: SignedPreKeyRef, description: "The device's current signed pre-key.", resolve: (bundle) => bundle.device }),
    oneTimePreKey: t.field({
      type: OneTimePreKeyRef,
      nullable: true,
      description: 'Null when the device has none left (X3DH then runs without it).',
      resolve: (bundle) => bundle.oneTimePreKey,
    }),
  }),
});

const PreKeyInput = builder.inputType('PreKeyInput', {
  description: 'A one-time pre-key (X25519).',
  fields: (t) => ({
    keyId: t.int({ required: true, description: 'Your id for the key (non-negative, unique per device).' }),
    publicKey: t.string({ required: true, description: 'Standard base64 of the 32-byte X25519 public key.' }),
  }),
});

const SignedPreKeyInput = builder.inputType('SignedPreKeyInput', {
  description: 'A signed pre-key (X25519), signed by the identity key.',
  fields: (t) => ({
    keyId: t.int({ required: true, description: 'Your id for the key; a new key needs a new id.' }),
    publicKey: t.string({ required: true, description: 'Standard base64 of the 32-byte X25519 public key.' }),
    signature: t.string({ required: true, description: 'Standard base64 of the 64-byte Ed25519 signature of the 32 raw publicKey bytes by the identity key.' }),
  }),
});

const UploadDeviceKeysInput = builder.inputType('UploadDeviceKeysInput', {
  description: "This device's end-to-end encryption keys.",
  fields: (t) => ({
    identityKey: t.string({ required: true, description: "Standard base64 of the device's 32-byte Ed25519 public key; the same on every call." }),
    signedPreKey: t.field({ type: SignedPreKeyInput, required: true, description: 'Replaces the stored one (rotation).' }),
    oneTimePreKeys: t.field({
      type: [PreKeyInput],
      required: false,
      description: `Added to those stored (at most ${ONE_TIME_PRE_KEYS_MAX} per device); a keyId already stored is CONFLICT.`,
    }),
  }),
});

const DeviceKeyEventTypeEnum = builder.enumType('DeviceKeyEventType', {
  description: 'What changed about keys.',
  values: {
    DEVICES_CHANGED: { description: '`user` gained or lost a device: fetch bundles of new devices, warn about changed identities.' },
    ONE_TIME_PRE_KEYS_LOW: { description: `This device has fewer than ${ONE_TIME_PRE_KEYS_LOW} one-time pre-keys left (\`remaining\`): upload more.` },
  } as const,
});

const DeviceKeyEventRef = builder.objectRef<DeviceKeyTopicEvent>('DeviceKeyEvent').implement({
  description: 'News about end-to-end encryption keys.',
  fields: (t) => ({
    type: t.field({ type: DeviceKeyEventTypeEnum, description: 'What changed.', resolve: (event) => event.kind }),
    user: t.prismaField({
      type: 'User',
      description: 'DEVICES_CHANGED: whose devices changed. ONE_TIME_PRE_KEYS_LOW: you.',
      resolve: (query, event, _args, ctx) => ctx.prisma.user.findUniqueOrThrow({ ...query, where: { id: event.userId } }),
    }),
    remaining: t.int({
      nullable: true,
      description: 'ONE_TIME_PRE_KEYS_LOW: one-time pre-keys this device has left.',
      resolve: (event) => (event.kind === 'ONE_TIME_PRE_KEYS_LOW' ? event.remaining : null),
    }),
  }),
});

builder.prismaObjectFields('User', (t) => ({
  devices: t.relation('devices', {
    description: "The user's devices with end-to-end encryption keys, oldest first.",
    query: () => ({ where: currentDevice(), orderBy: [...DEVICES_BY_AGE] }),
  }),
  sessions: t.relation('sessions', {
    description: 'Your signed-in sessions (as `sessions`), most recently seen first. Empty for anyone else.',
    extensions: { viewerDependent: true },
    query: (_args, ctx) => ({ where: liveSessionsOf(ctx.viewer?.userId ?? ''), orderBy: [...SESSIONS_BY_LAST_SEEN] }),
  }),
}));

builder.queryFields((t) => ({
  myDevice: t.prismaField({
    type: 'Device',
    nullable: true,
    description: "This session's device, or null until it uploads keys.",
    resolve: (query, _root, _args, ctx) => ctx.prisma.device.findUnique({ ...query, where: { id: requireViewer(ctx).sessionId } }),
  }),
  sessions: t.prismaField({
    type: ['Session'],
    description: 'Your signed-in sessions, with or without keys, most recently seen first.',
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.session.findMany({ ...query, where: liveSessionsOf(requireViewer(ctx).userId), orderBy: [...SESSIONS_BY_LAST_SEEN] }),
  }),
  preKeyBundles: t.field({
    type: [PreKeyBundleRef],
    description:
      "Pre-key bundles of the user's devices (never of the device asking), each with a one-time pre-key claimed for you alone (null when it has none left). " +
      'FORBIDDEN between users who blocked one another (unless you share a group); RATE_LIMITED (retryAfterSeconds) past RATE_LIMIT_PRE_KEY_BUNDLES calls for the same user.',
    args: {
      userId: t.arg.id({ required: true, description: 'The user whose devices you will write to.' }),
      deviceIds: t.arg.idList({ required: false, description: 'Only these devices (e.g. the missingDeviceIds of a CONFLICT), so keys of the others are not spent.' }),
    },
    resolve: (_root, args, ctx) => claimPreKeyBundles(ctx, requireViewer(ctx), String(args.userId), args.deviceIds?.map(String)),
  }),
}));

builder.mutationFields((t) => ({
  uploadDeviceKeys: t.prismaField({
    type: 'Device',
    description:
      'Stores this session\'s public keys: the first call makes it a device (everyone sharing a chat with you gets DEVICES_CHANGED); later calls with the same identityKey replace the signed pre-key and add one-time pre-keys. ' +
      'A bad signature, wrong lengths or bad base64 are BAD_USER_INPUT; another identity key, or a keyId already stored, CONFLICT.',
    args: { input: t.arg({ type: UploadDeviceKeysInput, required: true, description: 'This device\'s keys.' }) },
    resolve: async (query, _root, { input }, ctx) => {
      const device = await uploadDeviceKeys(ctx, requireViewer(ctx), input);
      return ctx.prisma.device.findUniqueOrThrow({ ...query, where: { id: device.id } });
    },
  }),
  revokeSession: t.boolean({
    description:
      'Ends one of your sessions: its tokens stop at once, its sockets close with 4401, its push subscriptions, device and keys are removed. False if it had ended already.',
    args: { id: t.arg.id({ required: true, description: 'The session\'s id (DeviceSession.id).' }) },
    resolve: (_root, args, ctx) => revokeSession(ctx, requireViewer(ctx), String(args.id)),
  }),
  revokeOtherSessions: t.int({
    description: 'Ends every session of yours but this one (as revokeSession); returns how many.',
    resolve: (_root, _args, ctx) => revokeOtherSessions(ctx, requireViewer(ctx)),
  }),
}));

builder.subscriptionFields((t) => ({
  deviceKeyEvents: t.field({
    type: DeviceKeyEventRef,
    description:
      'DEVICES_CHANGED when someone you share a chat with (or you) gains or loses a device; ONE_TIME_PRE_KEYS_LOW when this device runs low on one-time pre-keys. ' +
      'Check myDevice.oneTimePreKeyCount after reconnecting: events are not replayed.',
    subscribe: (_root, _args, ctx) => deviceKeyEventStream(ctx, requireViewer(ctx)),
    resolve: (event) => event,
  }),
}));
