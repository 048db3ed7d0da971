// The GraphQL documents that more than one test file, or tests and benches, send: one spelling
// each. A document only one file sends stays in that file. Variables keep the short names the tests
// pass (`$c` a chat id, `$u` a user id or ids, `$t` a refresh token, `$input` an input object).

// ---- selections ----

/** What register, login and refreshToken answer: both tokens, when the access token expires, and whose they are. */
export const AUTH_FIELDS = 'accessToken refreshToken accessTokenExpiresAt user { id username displayName email }';
/** A chat as its member sees it. */
export const CHAT_FIELDS = 'id kind title isPublic myRole unreadCount lastReadMessageId';
/** Every field of a message that holds no attachment. */
export const MESSAGE_FIELDS =
  'id seq kind text location { latitude longitude } replyTo { id } sender { id } createdAt editedAt deletedAt clientMessageId';

// ---- accounts and sessions ----

export const REGISTER = `mutation ($input: RegisterInput!) { register(input: $input) { ${AUTH_FIELDS} } }`;
export const LOGIN = `mutation ($input: LoginInput!) { login(input: $input) { ${AUTH_FIELDS} } }`;
export const REFRESH_TOKEN = `mutation ($t: String!) { refreshToken(refreshToken: $t) { ${AUTH_FIELDS} } }`;
/** Ends the caller's session, or with `$t` the session of that refresh token. */
export const LOGOUT = `mutation ($t: String) { logout(refreshToken: $t) }`;
export const REGISTER_PUSH = `mutation ($input: PushSubscriptionInput!) { registerPushSubscription(input: $input) { id } }`;
export const SET_STATUS = `mutation ($status: UserStatus!) { setStatus(status: $status) { id } }`;

// ---- contacts and blocks ----

export const ADD_CONTACT = `mutation ($u: ID!) { addContact(userId: $u) { id } }`;
export const REMOVE_CONTACT = `mutation ($u: ID!) { removeContact(userId: $u) }`;
export const BLOCK_USER = `mutation ($u: ID!) { blockUser(userId: $u) }`;

// ---- chats ----

/** Answers the new chat's id only. */
export const CREATE_CHAT = `mutation ($input: CreateChatInput!) { createChat(input: $input) { id } }`;
export const UPDATE_CHAT = `mutation ($c: ID!, $i: UpdateChatInput!) { updateChat(chatId: $c, input: $i) { id title isPublic } }`;
export const JOIN_CHAT = `mutation ($c: ID!) { joinChat(chatId: $c) { id myRole } }`;
export const LEAVE_CHAT = `mutation ($c: ID!) { leaveChat(chatId: $c) }`;
export const MUTE_CHAT = `mutation ($c: ID!) { muteChat(chatId: $c) { mutedUntil } }`;
export const ADD_CHAT_MEMBERS = `mutation ($c: ID!, $u: [ID!]!) { addChatMembers(chatId: $c, userIds: $u) { id } }`;
export const REMOVE_CHAT_MEMBER = `mutation ($c: ID!, $u: ID!) { removeChatMember(chatId: $c, userId: $u) { id } }`;
export const SET_CHAT_MEMBER_ROLE = `mutation ($c: ID!, $u: ID!, $r: ChatRole!) { setChatMemberRole(chatId: $c, userId: $u, role: $r) { id } }`;
export const START_TYPING = `mutation ($c: ID!) { setTyping(chatId: $c, isTyping: true) }`;

// ---- messages ----

/** Answers the whole message (MESSAGE_FIELDS). */
export const SEND_MESSAGE = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE_FIELDS} } }`;
/**
 * What a client typically asks back after sending: enough to place the message, not its text
 * again. The benches send it under load, so its selection is part of what they measure.
 */
export const SEND_MESSAGE_RECEIPT = 'mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq createdAt } }';
export const DELETE_MESSAGE = `mutation ($id: ID!) { deleteMessage(id: $id) { id } }`;
export const EDIT_MESSAGE = `mutation ($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id } }`;

// ---- subscriptions ----

/** Every chat of the viewer's without `$chatId`; `$sinceSeq` (with `$chatId`) replays what came after it first. */
export const MESSAGE_EVENTS = `subscription ($chatId: ID, $sinceSeq: Int) { messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) {
  type chatId seq message { id seq text deletedAt sender { id } } } }`;
export const CHAT_EVENTS = `subscription { chatEvents { type chatId user { id } actor { id } chat { id title } } }`;
export const TYPING = `subscription ($chatId: ID!) { typing(chatId: $chatId) { chatId isTyping user { id } } }`;
/** Everyone the viewer shares a chat with, or with `$ids` those of them. */
export const PRESENCE = `subscription ($ids: [ID!]) { presence(userIds: $ids) { user { id } status lastSeenAt } }`;
