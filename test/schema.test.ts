import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printedSchema, SCHEMA_FILE } from '../src/schema/print.ts';

describe('schema.graphql', () => {
  it('matches the schema built from the code (run `npm run schema:print` after API changes)', () => {
    expect(readFileSync(SCHEMA_FILE, 'utf8')).toBe(printedSchema());
  });

  it('keeps the root fields and input names clients depend on', () => {
    const sdl = printedSchema();
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
    ]) {
      expect(sdl).toContain(field);
    }
  });
});
