// The one MessageConnection type, shared by every list of messages (Chat.messages, mentions, ...).
import { builder } from './builder.ts';
import { MessageRef } from './messages.ts';

// Edges are named <Type>Edge throughout the schema (graphql-eslint's relay rules check it).
export const MessageConnection = builder.connectionObject({ type: MessageRef, name: 'MessageConnection' }, { name: 'MessageEdge' });
