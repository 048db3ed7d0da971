// The GraphQL documents that more than one test file, or tests and benches, send: one spelling
// each, as text. Those a client sends are @kocmoc/client's own documents (printed), so the suite runs
// the package's operations against the API and a document that breaks fails here; their variables
// are the package's (`chatId`, `userId`, `refreshToken`, `input`). A document only one file sends
// stays in that file; what only the tests and benches ask (a lean receipt) is spelled below.

import * as client from '@kocmoc/client/documents';
import { print } from 'graphql';

// ---- selections (for documents of one test file) ----

/** What register, login and refreshToken answer: both tokens, when the access token expires, and whose they are. */
export const AUTH_FIELDS = 'accessToken refreshToken accessTokenExpiresAt user { id username displayName email }';
/** A chat as its member sees it. */
export const CHAT_FIELDS = 'id kind title isPublic myRole unreadCount lastReadMessageId';
/** Every field of a message that holds no attachment. */
export const MESSAGE_FIELDS =
  'id seq kind text location { latitude longitude } replyTo { id } sender { id } createdAt editedAt deletedAt clientMessageId';

// ---- accounts and sessions ----

/** register, login and refreshToken answer client.AuthFields: both tokens, when the access one expires, and the user with email. */
export const REGISTER = print(client.RegisterMutation);
export const LOGIN = print(client.LoginMutation);
export const REFRESH_TOKEN = print(client.RefreshTokenMutation);
/** Ends the caller's session, or with `refreshToken` the session of that refresh token. */
export const LOGOUT = print(client.LogoutMutation);
export const REGISTER_PUSH = print(client.RegisterPushMutation);
export const SET_STATUS = print(client.SetStatusMutation);

// ---- contacts and blocks ----

export const ADD_CONTACT = print(client.AddContactMutation);
export const REMOVE_CONTACT = print(client.RemoveContactMutation);
export const BLOCK_USER = print(client.BlockUserMutation);

// ---- chats ----

export const CREATE_CHAT = print(client.CreateChatMutation);
export const UPDATE_CHAT = print(client.UpdateChatMutation);
export const JOIN_CHAT = print(client.JoinChatMutation);
export const LEAVE_CHAT = print(client.LeaveChatMutation);
export const MUTE_CHAT = print(client.MuteChatMutation);
export const ADD_CHAT_MEMBERS = print(client.AddChatMembersMutation);
export const REMOVE_CHAT_MEMBER = print(client.RemoveChatMemberMutation);
export const SET_CHAT_MEMBER_ROLE = print(client.SetChatMemberRoleMutation);
/** setTyping; pass `{ chatId, isTyping: true }`. */
export const START_TYPING = print(client.SetTypingMutation);

// ---- messages ----

/** Answers the whole message (client.MessageFields). */
export const SEND_MESSAGE = print(client.SendMessageMutation);
/**
 * What a client typically asks back after sending: enough to place the message, not its text
 * again. The benches send it under load, so its selection is part of what they measure.
 */
export const SEND_MESSAGE_RECEIPT = 'mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq createdAt } }';
export const DELETE_MESSAGE = print(client.DeleteMessageMutation);
export const EDIT_MESSAGE = print(client.EditMessageMutation);

// ---- subscriptions ----

// The subscription tests count executions, queries and shared payloads per event, so the
// messageEvents and typing they subscribe to ask only viewer-independent fields, not the
// package's client selections (MessageFields, with attachment links and replies).

/** Every chat of the viewer's without `$chatId`; `$sinceSeq` (with `$chatId`) replays what came after it first. */
export const MESSAGE_EVENTS = `subscription ($chatId: ID, $sinceSeq: Int) { messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) {
  type chatId seq message { id seq text deletedAt sender { id } } } }`;
export const CHAT_EVENTS = print(client.ChatEventsSubscription);
export const TYPING = `subscription ($chatId: ID!) { typing(chatId: $chatId) { chatId isTyping user { id } } }`;
/** Everyone the viewer shares a chat with, or with `userIds` those of them. */
export const PRESENCE = print(client.PresenceSubscription);
