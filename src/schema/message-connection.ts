// The one MessageConnection type, shared by every list of messages (Chat.messages, mentions, ...).
import { builder } from './builder.ts';
import { MessageRef } from './messages.ts';

// The edge keeps the name it had when Chat.messages defined the connection inline.
export const MessageConnection = builder.connectionObject({ type: MessageRef, name: 'MessageConnection' }, { name: 'MessageConnectionEdge' });
