// How client caches see the Kocmoc schema: every type with an `id` is normalised by it (Node types,
// ChatMember included); the types below carry no identity and live inside their parent; every
// connection is a Relay connection, merged page by page in both directions.

/** Object types without an id: events, payloads, values and the parts of connections. */
export const EMBEDDED_TYPES = [
  'AuthPayload',
  'CallEvent',
  'CallSignal',
  'ChatEvent',
  'DeviceKeyEvent',
  'Envelope',
  'IceServer',
  'Location',
  'MaintenanceState',
  'MessageEvent',
  'OneTimePreKey',
  'PageInfo',
  'PreKeyBundle',
  'PresenceEvent',
  'SignedPreKey',
  'TypingEvent',
  'ChatConnection',
  'ChatEdge',
  'ChatMemberConnection',
  'ChatMemberEdge',
  'MessageConnection',
  'MessageEdge',
  'UserConnection',
  'UserEdge',
] as const;

/** Every connection field, by parent type, with the arguments that pick a different list (not a page of it). */
export const CONNECTION_FIELDS = {
  Query: { chats: [], contacts: [], searchUsers: ['query'], blockedUsers: [] },
  Chat: { messages: [], members: [] },
} as const satisfies Record<string, Record<string, readonly string[]>>;
