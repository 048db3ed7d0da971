// The chat list: newest activity first, with the last message, unread count and, for direct
// chats, the other person's presence.
import type { ChatSummary, Message, User } from '@kocmoc/client/documents';
import { callText, displayName, presenceText, timeOf, type Presence } from '../format.ts';

interface Props {
  chats: ChatSummary[];
  me: User;
  openId: string | null;
  presenceOf: (user: User) => Presence;
  onOpen: (id: string) => void;
}

/** The other member of a direct chat. */
export const partnerOf = (chat: ChatSummary, me: User) => chat.members.edges.find(({ node }) => node.user.id !== me.id)?.node.user;

export const chatTitle = (chat: ChatSummary, me: User) => {
  if (chat.kind === 'GROUP') return chat.title ?? 'Group';
  const partner = partnerOf(chat, me);
  return partner ? displayName(partner) : 'Just you';
};

export function preview(message: Message, me: User): string {
  const who = message.sender.id === me.id ? 'You: ' : '';
  if (message.deletedAt) return `${who}message deleted`;
  if (message.call) return callText(message.call, message.sender.id === me.id);
  const label = { TEXT: '', IMAGE: 'Photo', FILE: 'File', VOICE: 'Voice message', LOCATION: 'Location', CALL: 'Call' }[message.kind];
  if (label && message.text) return `${who}${label}: ${message.text}`;
  return `${who}${label || message.text}`;
}

export function PresenceDot({ presence }: { presence: Presence }) {
  const text = presenceText(presence);
  return <span class={`dot ${presence.status.toLowerCase()}`} title={text} aria-label={text} data-testid="presence-dot" data-status={presence.status} />;
}

export function ChatList({ chats, me, openId, presenceOf, onOpen }: Props) {
  if (chats.length === 0) return <p class="muted list-empty">No chats yet.</p>;
  const sorted = [...chats].sort((a, b) => Date.parse(b.lastActivityAt) - Date.parse(a.lastActivityAt));
  return (
    <ul class="chat-list" aria-label="Chats">
      {sorted.map((chat) => {
        const partner = chat.kind === 'DIRECT' ? partnerOf(chat, me) : undefined;
        return (
          <li key={chat.id}>
            <button type="button" class={chat.id === openId ? 'open' : ''} onClick={() => onOpen(chat.id)} data-chat-id={chat.id}>
              <span class="avatar">
                {chatTitle(chat, me).slice(0, 1).toUpperCase()}
                {partner && <PresenceDot presence={presenceOf(partner)} />}
              </span>
              <span class="summary">
                <span class="title">{chatTitle(chat, me)}</span>
                <span class="last muted">{chat.lastMessage ? preview(chat.lastMessage, me) : 'No messages yet'}</span>
              </span>
              <span class="meta">
                <span class="muted">{timeOf(chat.lastActivityAt)}</span>
                {chat.unreadCount > 0 && (
                  <span class="unread" data-testid="unread" aria-label={`${chat.unreadCount} unread`}>
                    {chat.unreadCount}
                  </span>
                )}
              </span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}
