// A fixture relay-compiler compiles on every `npm run lint` (lint:relay): refetchable Chat fragments
// that page messages (backwards) and members, which needs the Node interface and Query.node. Relay
// allows one @connection per refetchable fragment, so the members have a fragment of their own.
declare const graphql: (strings: TemplateStringsArray) => unknown;

export const messagesChat = graphql`
  fragment Messages_chat on Chat
  @refetchable(queryName: "MessagesChatPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 20 }, cursor: { type: "String" }) {
    id
    title
    messages(last: $count, before: $cursor) @connection(key: "Messages_chat_messages") {
      edges {
        node {
          id
          seq
          text
          sender {
            id
            displayName
          }
        }
      }
    }
  }
`;

export const membersChat = graphql`
  fragment Messages_chatMembers on Chat
  @refetchable(queryName: "MessagesChatMembersPaginationQuery")
  @argumentDefinitions(count: { type: "Int", defaultValue: 50 }, cursor: { type: "String" }) {
    members(first: $count, after: $cursor) @connection(key: "Messages_chat_members") {
      edges {
        node {
          id
          role
          user {
            id
            displayName
          }
        }
      }
    }
  }
`;
