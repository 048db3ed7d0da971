// The operations most clients start from, as typed documents (TypedDocumentNode: urql, Apollo and
// graphql-request take them as they are, with result and variable types).
import { graphql } from './graphql.ts';

export const MessageFields = graphql(`
  fragment MessageFields on Message @_unmask {
    id
    seq
    kind
    text
    createdAt
    editedAt
    deletedAt
    sender { id displayName }
  }
`);

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

export const SendMessageMutation = graphql(
  `
    mutation SendMessage($input: SendMessageInput!) {
      sendMessage(input: $input) { ...MessageFields }
    }
  `,
  [MessageFields],
);

export const SetChatMemberRoleMutation = graphql(`
  mutation SetChatMemberRole($chatId: ID!, $userId: ID!, $role: ChatRole!) {
    setChatMemberRole(chatId: $chatId, userId: $userId, role: $role) { id members(first: 100) { edges { cursor node { id role } } } }
  }
`);

export const MessageEventsSubscription = graphql(
  `
    subscription MessageEvents($chatId: ID, $sinceSeq: Int) {
      messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) { type chatId seq message { ...MessageFields } }
    }
  `,
  [MessageFields],
);

export const RefreshTokenMutation = graphql(`
  mutation RefreshToken($refreshToken: String!) {
    refreshToken(refreshToken: $refreshToken) { accessToken refreshToken accessTokenExpiresAt }
  }
`);
