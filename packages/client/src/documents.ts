// The operations a Kocmoc client sends, as typed documents (TypedDocumentNode: urql, Apollo and
// graphql-request take them as they are, with result and variable types). The web client and the
// API's test suite send these same documents, so a schema change that breaks one fails there.
// Fragments are @_unmask: their fields read as plain fields of the parent (no readFragment).
import { graphql, type ResultOf } from './graphql.ts';

export type { ResultOf, VariablesOf } from './graphql.ts';

// ---- fragments ----

export const UserFields = graphql(`
  fragment UserFields on User @_unmask {
    id
    username
    displayName
    status
    lastSeenAt
  }
`);

/** What register, login and refreshToken answer: both tokens, when the access one expires, and whose they are. */
export const AuthFields = graphql(
  `
    fragment AuthFields on AuthPayload @_unmask {
      accessToken
      accessTokenExpiresAt
      refreshToken
      user { ...UserFields email }
    }
  `,
  [UserFields],
);

export const AttachmentFields = graphql(`
  fragment AttachmentFields on Attachment @_unmask {
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

export const MessageFields = graphql(
  `
    fragment MessageFields on Message @_unmask {
      id
      seq
      kind
      text
      createdAt
      editedAt
      deletedAt
      clientMessageId
      sender { id username displayName }
      replyTo { id text deletedAt sender { id username displayName } }
      location { latitude longitude }
      attachment { ...AttachmentFields }
      call { id media state endReason durationSeconds }
    }
  `,
  [AttachmentFields],
);

/** A chat as the chat list shows it. Member lists stay short: the server limits an operation's cost. */
export const ChatSummaryFields = graphql(
  `
    fragment ChatSummaryFields on Chat @_unmask {
      id
      kind
      title
      isPublic
      myRole
      unreadCount
      lastReadMessageId
      lastActivityAt
      lastMessage { ...MessageFields }
      members(first: 10) {
        edges { node { id role user { ...UserFields } } }
        pageInfo { hasNextPage }
      }
    }
  `,
  [MessageFields, UserFields],
);

/** What the call screens need: who calls in which chat, its state, and the devices in it. */
export const CallFields = graphql(`
  fragment CallFields on Call @_unmask {
    id
    media
    state
    endReason
    durationSeconds
    ringing
    chat { id kind title }
    initiator { id username displayName }
    participants { id user { id } device { id } leftAt }
  }
`);

// ---- accounts and sessions ----

export const RegisterMutation = graphql(
  `
    mutation Register($input: RegisterInput!) {
      register(input: $input) { ...AuthFields }
    }
  `,
  [AuthFields],
);

export const LoginMutation = graphql(
  `
    mutation Login($input: LoginInput!) {
      login(input: $input) { ...AuthFields }
    }
  `,
  [AuthFields],
);

/** A new pair of tokens for the refresh token (each refresh token works once). */
export const RefreshTokenMutation = graphql(
  `
    mutation RefreshToken($refreshToken: String!) {
      refreshToken(refreshToken: $refreshToken) { ...AuthFields }
    }
  `,
  [AuthFields],
);

/** Ends the caller's session, or with `refreshToken` the session of that refresh token. */
export const LogoutMutation = graphql(`
  mutation Logout($refreshToken: String) {
    logout(refreshToken: $refreshToken)
  }
`);

export const SetStatusMutation = graphql(`
  mutation SetStatus($status: UserStatus!) {
    setStatus(status: $status) { id status }
  }
`);

export const VapidPublicKeyQuery = graphql(`
  query VapidPublicKey {
    vapidPublicKey
  }
`);

export const RegisterPushMutation = graphql(`
  mutation RegisterPush($input: PushSubscriptionInput!) {
    registerPushSubscription(input: $input) { id }
  }
`);

// ---- users, contacts and blocks ----

export const SearchUsersQuery = graphql(
  `
    query SearchUsers($query: String!) {
      searchUsers(query: $query, first: 10) { edges { node { ...UserFields } } }
    }
  `,
  [UserFields],
);

export const AddContactMutation = graphql(`
  mutation AddContact($userId: ID!) {
    addContact(userId: $userId) { id }
  }
`);

export const RemoveContactMutation = graphql(`
  mutation RemoveContact($userId: ID!) {
    removeContact(userId: $userId)
  }
`);

export const BlockUserMutation = graphql(`
  mutation BlockUser($userId: ID!) {
    blockUser(userId: $userId)
  }
`);

// ---- chats ----

/** A page of the chat list. */
export const ChatsQuery = graphql(
  `
    query Chats($after: String) {
      chats(first: 30, after: $after) {
        edges { node { ...ChatSummaryFields } }
        pageInfo { hasNextPage endCursor }
      }
    }
  `,
  [ChatSummaryFields],
);

export const ChatQuery = graphql(
  `
    query Chat($id: ID!) {
      chat(id: $id) { ...ChatSummaryFields }
    }
  `,
  [ChatSummaryFields],
);

/** A chat with a page of its members and of its history (older pages with `before`), as one cacheable query. */
export const ChatPageQuery = graphql(
  `
    query ChatPage($id: ID!, $before: String, $last: Int = 50) {
      chat(id: $id) {
        id
        title
        myRole
        members(first: 100) { edges { cursor node { id role user { id displayName } } } pageInfo { hasNextPage endCursor } }
        messages(last: $last, before: $before) { edges { cursor node { ...MessageFields } } pageInfo { hasPreviousPage startCursor } }
      }
    }
  `,
  [MessageFields],
);

/** A page of history: the newest `last` messages before `before` (or the newest of all). */
export const HistoryQuery = graphql(
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
  [MessageFields],
);

export const CreateChatMutation = graphql(
  `
    mutation CreateChat($input: CreateChatInput!) {
      createChat(input: $input) { ...ChatSummaryFields }
    }
  `,
  [ChatSummaryFields],
);

export const UpdateChatMutation = graphql(`
  mutation UpdateChat($chatId: ID!, $input: UpdateChatInput!) {
    updateChat(chatId: $chatId, input: $input) { id title isPublic }
  }
`);

export const JoinChatMutation = graphql(`
  mutation JoinChat($chatId: ID!) {
    joinChat(chatId: $chatId) { id myRole }
  }
`);

export const LeaveChatMutation = graphql(`
  mutation LeaveChat($chatId: ID!) {
    leaveChat(chatId: $chatId)
  }
`);

export const MuteChatMutation = graphql(`
  mutation MuteChat($chatId: ID!) {
    muteChat(chatId: $chatId) { id mutedUntil }
  }
`);

export const AddChatMembersMutation = graphql(
  `
    mutation AddChatMembers($chatId: ID!, $userIds: [ID!]!) {
      addChatMembers(chatId: $chatId, userIds: $userIds) { ...ChatSummaryFields }
    }
  `,
  [ChatSummaryFields],
);

export const RemoveChatMemberMutation = graphql(`
  mutation RemoveChatMember($chatId: ID!, $userId: ID!) {
    removeChatMember(chatId: $chatId, userId: $userId) { id }
  }
`);

/** Answers the chat's members with their roles, so a cache updates the member by ChatMember.id. */
export const SetChatMemberRoleMutation = graphql(`
  mutation SetChatMemberRole($chatId: ID!, $userId: ID!, $role: ChatRole!) {
    setChatMemberRole(chatId: $chatId, userId: $userId, role: $role) { id members(first: 100) { edges { cursor node { id role } } } }
  }
`);

export const MarkReadMutation = graphql(`
  mutation MarkRead($chatId: ID!, $messageId: ID!) {
    markRead(chatId: $chatId, messageId: $messageId) { id unreadCount lastReadMessageId }
  }
`);

/** Typing lapses on its own after a few seconds: repeat it while the user types. */
export const SetTypingMutation = graphql(`
  mutation SetTyping($chatId: ID!, $isTyping: Boolean!) {
    setTyping(chatId: $chatId, isTyping: $isTyping)
  }
`);

// ---- messages ----

export const SendMessageMutation = graphql(
  `
    mutation SendMessage($input: SendMessageInput!) {
      sendMessage(input: $input) { ...MessageFields }
    }
  `,
  [MessageFields],
);

export const EditMessageMutation = graphql(
  `
    mutation EditMessage($id: ID!, $text: String!) {
      editMessage(id: $id, text: $text) { ...MessageFields }
    }
  `,
  [MessageFields],
);

export const DeleteMessageMutation = graphql(
  `
    mutation DeleteMessage($id: ID!) {
      deleteMessage(id: $id) { ...MessageFields }
    }
  `,
  [MessageFields],
);

/** Multipart (the GraphQL multipart request spec); then send the message with its `attachmentId`. */
export const UploadFileMutation = graphql(`
  mutation UploadFile($file: File!, $kind: MessageKind) {
    uploadFile(file: $file, kind: $kind) { id }
  }
`);

// ---- calls ----

export const IceServersQuery = graphql(`
  query IceServers {
    iceServers { urls username credential }
  }
`);

export const CallQuery = graphql(
  `
    query Call($id: ID!) {
      call(id: $id) { ...CallFields }
    }
  `,
  [CallFields],
);

export const StartCallMutation = graphql(
  `
    mutation StartCall($input: StartCallInput!) {
      startCall(input: $input) { ...CallFields }
    }
  `,
  [CallFields],
);

export const AnswerCallMutation = graphql(
  `
    mutation AnswerCall($callId: ID!) {
      answerCall(callId: $callId) { ...CallFields }
    }
  `,
  [CallFields],
);

export const DeclineCallMutation = graphql(
  `
    mutation DeclineCall($callId: ID!) {
      declineCall(callId: $callId) { ...CallFields }
    }
  `,
  [CallFields],
);

export const EndCallMutation = graphql(
  `
    mutation EndCall($callId: ID!) {
      endCall(callId: $callId) { ...CallFields }
    }
  `,
  [CallFields],
);

export const SendCallSignalMutation = graphql(`
  mutation SendCallSignal($input: CallSignalInput!) {
    sendCallSignal(input: $input)
  }
`);

// ---- subscriptions (graphql-ws, or SSE) ----

/** Every chat of the viewer's without `chatId`; `sinceSeq` (with `chatId`) replays what came after it first, then goes live. */
export const MessageEventsSubscription = graphql(
  `
    subscription MessageEvents($chatId: ID, $sinceSeq: Int) {
      messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) { type chatId seq message { ...MessageFields } }
    }
  `,
  [MessageFields],
);

export const ChatEventsSubscription = graphql(`
  subscription ChatEvents {
    chatEvents { type chatId user { id } actor { id } chat { id title } }
  }
`);

export const TypingSubscription = graphql(`
  subscription Typing($chatId: ID!) {
    typing(chatId: $chatId) { chatId isTyping expiresAt user { id displayName } }
  }
`);

/** Everyone the viewer shares a chat with, or with `userIds` those of them. */
export const PresenceSubscription = graphql(`
  subscription Presence($userIds: [ID!]) {
    presence(userIds: $userIds) { status lastSeenAt user { id } }
  }
`);

/** Calls ringing this device, their changes, and the signals of the other devices in them. */
export const CallEventsSubscription = graphql(
  `
    subscription CallEvents {
      callEvents {
        type
        call { ...CallFields }
        signal { fromDeviceId kind payload }
      }
    }
  `,
  [CallFields],
);

export type User = ResultOf<typeof UserFields>;
export type AuthPayload = ResultOf<typeof AuthFields>;
export type Attachment = ResultOf<typeof AttachmentFields>;
export type Message = ResultOf<typeof MessageFields>;
export type ChatSummary = ResultOf<typeof ChatSummaryFields>;
export type Call = ResultOf<typeof CallFields>;
