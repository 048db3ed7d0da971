import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schema } from '../src/schema/index.ts';
import { printedSchema, SCHEMA_FILE } from '../src/schema/print.ts';

describe('schema.graphql', () => {
  it('matches the schema built from the code (run `npm run schema:print` after API changes)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(printedSchema());
  });

  it('keeps the root fields and input names clients depend on', () => {
    // One line per root field, without descriptions: name(args): type.
    const sdl = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]
      .flatMap((type) => Object.values(type!.getFields()))
      .map((field) => `${field.name}${field.args.length ? `(${[...field.args].sort((a, b) => a.name.localeCompare(b.name)).map((a) => `${a.name}: ${a.type}`).join(', ')})` : ''}: ${field.type}`)
      .join('\n');
    for (const field of [
      'register(input: RegisterInput!): AuthPayload!',
      'login(input: LoginInput!): AuthPayload!',
      'refreshToken(refreshToken: String!): AuthPayload!',
      'logout(refreshToken: String): Boolean!',
      'me: User!',
      'user(id: ID!): User',
      'searchUsers(after: String, before: String, first: Int, last: Int, query: String!): UserConnection!',
      'updateProfile(input: UpdateProfileInput!): User!',
      'setStatus(status: UserStatus!): User!',
      'chats(after: String, before: String, first: Int, last: Int): ChatConnection!',
      'chat(id: ID!): Chat',
      'createChat(input: CreateChatInput!): Chat!',
      'joinChat(chatId: ID!): Chat!',
      'leaveChat(chatId: ID!): Boolean!',
      'addChatMembers(chatId: ID!, userIds: [ID!]!): Chat!',
      'removeChatMember(chatId: ID!, userId: ID!): Chat!',
      'updateChat(chatId: ID!, input: UpdateChatInput!): Chat!',
      'sendMessage(input: SendMessageInput!): Message!',
      'editMessage(id: ID!, text: String!): Message!',
      'deleteMessage(id: ID!): Message!',
      'markRead(chatId: ID!, messageId: ID!): Chat!',
      'messageEvents(chatId: ID, sinceSeq: Int): MessageEvent!',
      'presence(userIds: [ID!]): PresenceEvent!',
      'typing(chatId: ID!): TypingEvent!',
      'setTyping(chatId: ID!, isTyping: Boolean!): Boolean!',
      'chatEvents: ChatEvent!',
      'uploadFile(encrypted: Boolean, file: File!, kind: MessageKind): Attachment!',
      'contacts(after: String, before: String, first: Int, last: Int): UserConnection!',
      'addContact(userId: ID!): User!',
      'removeContact(userId: ID!): Boolean!',
      'blockUser(userId: ID!): Boolean!',
      'unblockUser(userId: ID!): Boolean!',
      'blockedUsers(after: String, before: String, first: Int, last: Int): UserConnection!',
      'setMaintenanceMode(enabled: Boolean!, message: String): MaintenanceState!',
      'maintenance: MaintenanceState!',
      'vapidPublicKey: String!',
      'registerPushSubscription(input: PushSubscriptionInput!): PushSubscription!',
      'unregisterPushSubscription(endpoint: String!): Boolean!',
      'muteChat(chatId: ID!, until: DateTime): Chat!',
      'unmuteChat(chatId: ID!): Chat!',
      'uploadDeviceKeys(input: UploadDeviceKeysInput!): Device!',
      'myDevice: Device',
      'sessions: [DeviceSession!]!',
      'revokeSession(id: ID!): Boolean!',
      'revokeOtherSessions: Int!',
      'preKeyBundles(deviceIds: [ID!], userId: ID!): [PreKeyBundle!]!',
      'deviceKeyEvents: DeviceKeyEvent!',
      'sendEncryptedMessage(input: SendEncryptedMessageInput!): Message!',
      'editEncryptedMessage(input: EditEncryptedMessageInput!): Message!',
    ]) {
      expect(sdl).toContain(field);
    }
  });
});
