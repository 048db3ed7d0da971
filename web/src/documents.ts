// Every GraphQL document the client sends, in one place.
import { graphql, type ResultOf } from './graphql.ts';

export const USER_FIELDS = graphql(`
  fragment UserFields on User {
    id
    username
    displayName
    status
    lastSeenAt
  }
`);

const AUTH_FIELDS = graphql(
  `
    fragment AuthFields on AuthPayload {
      accessToken
      accessTokenExpiresAt
      refreshToken
      user { ...UserFields }
    }
  `,
  [USER_FIELDS],
);

export const REGISTER = graphql(
  `
    mutation Register($input: RegisterInput!) {
      register(input: $input) { ...AuthFields }
    }
  `,
  [AUTH_FIELDS],
);

export const LOGIN = graphql(
  `
    mutation Login($input: LoginInput!) {
      login(input: $input) { ...AuthFields }
    }
  `,
  [AUTH_FIELDS],
);

export const REFRESH = graphql(
  `
    mutation Refresh($refreshToken: String!) {
      refreshToken(refreshToken: $refreshToken) { ...AuthFields }
    }
  `,
  [AUTH_FIELDS],
);

export const LOGOUT = graphql(`
  mutation Logout($refreshToken: String) {
    logout(refreshToken: $refreshToken)
  }
`);

export const ATTACHMENT_FIELDS = graphql(`
  fragment AttachmentFields on Attachment {
    id
    kind
    name
    mimeType
    size
    width
    height
    url
    thumbnailUrl
  }
`);

export const MESSAGE_FIELDS = graphql(
  `
    fragment MessageFields on Message {
      id
      seq
      kind
      text
      createdAt
      editedAt
      deletedAt
      sender { id username displayName }
      replyTo { id text deletedAt sender { id username displayName } }
      location { latitude longitude }
      attachment { ...AttachmentFields }
      call { id media state endReason durationSeconds }
    }
  `,
  [ATTACHMENT_FIELDS],
);

export const CHAT_SUMMARY = graphql(
  `
    fragment ChatSummary on Chat {
      id
      kind
      title
      myRole
      unreadCount
      lastReadMessageId
      lastActivityAt
      lastMessage { ...MessageFields }
      members(first: 10) {
        edges { node { role user { ...UserFields } } }
        pageInfo { hasNextPage }
      }
    }
  `,
  [MESSAGE_FIELDS, USER_FIELDS],
);

/**
 * A page of the chat list. Pages and member lists stay small: the server refuses operations whose
 * cost (page sizes multiplied down the selection) is over its limit.
 */
export const CHATS = graphql(
  `
    query Chats($after: String) {
      chats(first: 30, after: $after) {
        edges { node { ...ChatSummary } }
        pageInfo { hasNextPage endCursor }
      }
    }
  `,
  [CHAT_SUMMARY],
);

export const CHAT = graphql(
  `
    query Chat($id: ID!) {
      chat(id: $id) { ...ChatSummary }
    }
  `,
  [CHAT_SUMMARY],
);

/** A page of history: the newest `last` messages before `before` (or the newest of all). */
export const HISTORY = graphql(
  `
    query History($chatId: ID!, $last: Int!, $before: String) {
      chat(id: $chatId) {
        id
        messages(last: $last, before: $before) {
          edges { node { ...MessageFields } }
          pageInfo { hasPreviousPage startCursor }
        }
      }
    }
  `,
  [MESSAGE_FIELDS],
);

export const SEARCH_USERS = graphql(
  `
    query SearchUsers($query: String!) {
      searchUsers(query: $query, first: 10) { edges { node { ...UserFields } } }
    }
  `,
  [USER_FIELDS],
);

export const CREATE_CHAT = graphql(
  `
    mutation CreateChat($input: CreateChatInput!) {
      createChat(input: $input) { ...ChatSummary }
    }
  `,
  [CHAT_SUMMARY],
);

export const ADD_MEMBERS = graphql(
  `
    mutation AddMembers($chatId: ID!, $userIds: [ID!]!) {
      addChatMembers(chatId: $chatId, userIds: $userIds) { ...ChatSummary }
    }
  `,
  [CHAT_SUMMARY],
);

export const SEND_MESSAGE = graphql(
  `
    mutation SendMessage($input: SendMessageInput!) {
      sendMessage(input: $input) { ...MessageFields }
    }
  `,
  [MESSAGE_FIELDS],
);

export const EDIT_MESSAGE = graphql(
  `
    mutation EditMessage($id: ID!, $text: String!) {
      editMessage(id: $id, text: $text) { ...MessageFields }
    }
  `,
  [MESSAGE_FIELDS],
);

export const DELETE_MESSAGE = graphql(
  `
    mutation DeleteMessage($id: ID!) {
      deleteMessage(id: $id) { ...MessageFields }
    }
  `,
  [MESSAGE_FIELDS],
);

export const UPLOAD_FILE = graphql(`
  mutation UploadFile($file: File!, $kind: MessageKind) {
    uploadFile(file: $file, kind: $kind) { id }
  }
`);

export const MARK_READ = graphql(`
  mutation MarkRead($chatId: ID!, $messageId: ID!) {
    markRead(chatId: $chatId, messageId: $messageId) { id unreadCount lastReadMessageId }
  }
`);

export const SET_TYPING = graphql(`
  mutation SetTyping($chatId: ID!, $isTyping: Boolean!) {
    setTyping(chatId: $chatId, isTyping: $isTyping)
  }
`);

export const VAPID_PUBLIC_KEY = graphql(`
  query VapidPublicKey {
    vapidPublicKey
  }
`);

export const REGISTER_PUSH = graphql(`
  mutation RegisterPush($input: PushSubscriptionInput!) {
    registerPushSubscription(input: $input) { id }
  }
`);

// ---- calls ----

/** What the call screens need: who calls in which chat, its state, and the devices in it. */
export const CALL_FIELDS = graphql(`
  fragment CallFields on Call {
    id
    media
    state
    endReason
    durationSeconds
    ringing
    chat { id kind title }
    initiator { id username displayName }
    participants { user { id } device { id } leftAt }
  }
`);

export const ICE_SERVERS = graphql(`
  query IceServers {
    iceServers { urls username credential }
  }
`);

export const CALL = graphql(
  `
    query Call($id: ID!) {
      call(id: $id) { ...CallFields }
    }
  `,
  [CALL_FIELDS],
);

export const START_CALL = graphql(
  `
    mutation StartCall($input: StartCallInput!) {
      startCall(input: $input) { ...CallFields }
    }
  `,
  [CALL_FIELDS],
);

export const ANSWER_CALL = graphql(
  `
    mutation AnswerCall($callId: ID!) {
      answerCall(callId: $callId) { ...CallFields }
    }
  `,
  [CALL_FIELDS],
);

export const DECLINE_CALL = graphql(
  `
    mutation DeclineCall($callId: ID!) {
      declineCall(callId: $callId) { ...CallFields }
    }
  `,
  [CALL_FIELDS],
);

export const END_CALL = graphql(
  `
    mutation EndCall($callId: ID!) {
      endCall(callId: $callId) { ...CallFields }
    }
  `,
  [CALL_FIELDS],
);

export const SEND_CALL_SIGNAL = graphql(`
  mutation SendCallSignal($input: CallSignalInput!) {
    sendCallSignal(input: $input)
  }
`);

// ---- subscriptions ----

/** With `chatId` and `sinceSeq`: first what came after `sinceSeq`, then live. */
export const MESSAGE_EVENTS = graphql(
  `
    subscription MessageEvents($chatId: ID, $sinceSeq: Int) {
      messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) {
        type
        chatId
        seq
        message { ...MessageFields }
      }
    }
  `,
  [MESSAGE_FIELDS],
);

export const CHAT_EVENTS = graphql(`
  subscription ChatEvents {
    chatEvents { type chatId user { id } }
  }
`);

export const TYPING = graphql(`
  subscription Typing($chatId: ID!) {
    typing(chatId: $chatId) { isTyping expiresAt user { id displayName } }
  }
`);

export const PRESENCE = graphql(`
  subscription Presence($userIds: [ID!]) {
    presence(userIds: $userIds) { status lastSeenAt user { id } }
  }
`);

/** Calls ringing this device, their changes, and the signals of the other devices in them. */
export const CALL_EVENTS = graphql(
  `
    subscription CallEvents {
      callEvents {
        type
        call { ...CallFields }
        signal { fromDeviceId kind payload }
      }
    }
  `,
  [CALL_FIELDS],
);

export type User = ResultOf<typeof USER_FIELDS>;
export type Message = ResultOf<typeof MESSAGE_FIELDS>;
export type Attachment = ResultOf<typeof ATTACHMENT_FIELDS>;
export type ChatSummary = ResultOf<typeof CHAT_SUMMARY>;
export type Call = ResultOf<typeof CALL_FIELDS>;
export type AuthPayload = ResultOf<typeof AUTH_FIELDS>;
