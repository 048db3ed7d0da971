// An open chat. History loads newest first and pages upward as you scroll to the top; new,
// edited and deleted messages arrive over messageEvents(chatId, sinceSeq), which after a dropped
// socket resumes from the newest message held (the server replays the rest, so nothing is missed
// or shown twice). Messages of others are marked read as they scroll into view.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { request } from '../api.ts';
import { AddChatMembersMutation, DeleteMessageMutation, HistoryQuery, MarkReadMutation, MessageEventsSubscription, TypingSubscription, type ChatSummary, type Message, type User } from '@kocmoc/client/documents';
import { displayName, presenceText, type Presence } from '../format.ts';
import { placeCall } from '../calls.ts';
import { live } from '../live.ts';
import { useCall } from './CallBar.tsx';
import { chatTitle, partnerOf, PresenceDot } from './ChatList.tsx';
import { Composer } from './Composer.tsx';
import { Icon } from './Icon.tsx';
import { MessageItem } from './MessageItem.tsx';
import { UserSearch } from './UserSearch.tsx';

interface Props {
  chat: ChatSummary;
  me: User;
  presenceOf: (user: User) => Presence;
  report: (error: unknown) => void;
  /** For background work: quiet while the connection banner shows. */
  reportQuietly: (error: unknown) => void;
  onBack: () => void;
  /** Fields of this chat that changed (the list then fetches it again for the rest). */
  onChanged: (patch: Partial<ChatSummary>) => void;
}

const PAGE = 30;

export function ChatView({ chat, me, presenceOf, report, reportQuietly, onBack, onChanged }: Props) {
  const [messages, setMessages] = useState<Map<string, Message>>(new Map());
  const [older, setOlder] = useState<{ cursor: string | null; more: boolean; loading: boolean }>({ cursor: null, more: false, loading: true });
  const [typing, setTyping] = useState<Map<string, { name: string; until: number }>>(new Map());
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [adding, setAdding] = useState(false);
  const scroller = useRef<HTMLOListElement>(null);
  /** The newest seq held: where messageEvents resumes. */
  const newestSeq = useRef(0);
  /** How the next render places the scroll position: stay at the bottom, or keep what was in view. */
  const anchor = useRef<{ keepFrom?: number }>({});

  const merge = useCallback((incoming: Message[]) => {
    for (const message of incoming) newestSeq.current = Math.max(newestSeq.current, message.seq);
    setMessages((map) => {
      const next = new Map(map);
      for (const message of incoming) next.set(message.id, message);
      return next;
    });
  }, []);
  const sorted = useMemo(() => [...messages.values()].sort((a, b) => a.seq - b.seq), [messages]);

  // The newest page first, then live events from the newest seq on.
  useEffect(() => {
    let stop: (() => void) | undefined;
    let cancelled = false;
    request(HistoryQuery, { chatId: chat.id, last: PAGE }).then((data) => {
      if (cancelled || !data.chat) return;
      const { edges, pageInfo } = data.chat.messages;
      merge(edges.map(({ node }) => node));
      setOlder({ cursor: pageInfo.startCursor ?? null, more: pageInfo.hasPreviousPage, loading: false });
      stop = live(MessageEventsSubscription, (event) => merge([event.messageEvents.message]), {
        variables: () => ({ chatId: chat.id, sinceSeq: newestSeq.current }),
        // sinceSeq replays new messages; edits and deletes of recent ones made meanwhile come
        // with the newest page again.
        onResume: () => void request(HistoryQuery, { chatId: chat.id, last: PAGE }).then((page) => merge(page.chat?.messages.edges.map(({ node }) => node) ?? []), reportQuietly),
        onError: report,
      });
    }, report);
    return () => {
      cancelled = true;
      stop?.();
    };
  }, [chat.id, merge, report, reportQuietly]);

  useEffect(
    () =>
      live(
        TypingSubscription,
        ({ typing: event }) =>
          setTyping((map) => {
            const next = new Map(map);
            if (event.isTyping && event.expiresAt) next.set(event.user.id, { name: event.user.displayName, until: Date.parse(event.expiresAt) });
            else next.delete(event.user.id);
            return next;
          }),
        { variables: () => ({ chatId: chat.id }), onError: report },
      ),
    [chat.id, report],
  );
  // A start that is not refreshed ends by itself.
  useEffect(() => {
    if (typing.size === 0) return;
    const timer = setInterval(() => setTyping((map) => new Map([...map].filter(([, entry]) => entry.until > Date.now()))), 1_000);
    return () => clearInterval(timer);
  }, [typing.size]);

  const loadOlder = useCallback(() => {
    if (!older.more || older.loading) return;
    setOlder((state) => ({ ...state, loading: true }));
    request(HistoryQuery, { chatId: chat.id, last: PAGE, before: older.cursor }).then((data) => {
      if (!data.chat) return;
      const { edges, pageInfo } = data.chat.messages;
      anchor.current = { keepFrom: scroller.current!.scrollHeight - scroller.current!.scrollTop };
      merge(edges.map(({ node }) => node));
      setOlder({ cursor: pageInfo.startCursor ?? null, more: pageInfo.hasPreviousPage, loading: false });
    }, report);
  }, [chat.id, older, merge, report]);

  // Older pages keep the view where it was; otherwise follow new messages when at the bottom.
  const atBottom = useRef(true);
  useLayoutEffect(() => {
    const element = scroller.current;
    if (!element) return;
    if (anchor.current.keepFrom !== undefined) element.scrollTop = element.scrollHeight - anchor.current.keepFrom;
    else if (atBottom.current) element.scrollTop = element.scrollHeight;
    anchor.current = {};
    // A short history does not fill the pane: no scroll to start paging, so fetch on.
    if (element.scrollHeight <= element.clientHeight && older.more && !older.loading) loadOlder();
  }, [sorted, older, loadOlder]);
  const onScroll = () => {
    const element = scroller.current!;
    atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 60;
    if (element.scrollTop < 80) loadOlder();
  };

  // Mark read what others wrote as it scrolls into view (never backwards; the server agrees).
  const readSeq = useRef(0);
  const markTimer = useRef<ReturnType<typeof setTimeout>>();
  const observer = useMemo(
    () =>
      new IntersectionObserver(
        (entries) => {
          if (document.visibilityState !== 'visible') return;
          let newest: { id: string; seq: number } | undefined;
          for (const entry of entries) {
            const { id, seq } = (entry.target as HTMLElement).dataset;
            if (entry.isIntersecting && id && Number(seq) > (newest?.seq ?? readSeq.current)) newest = { id, seq: Number(seq) };
          }
          if (!newest) return;
          readSeq.current = newest.seq;
          const messageId = newest.id;
          clearTimeout(markTimer.current);
          markTimer.current = setTimeout(() => {
            request(MarkReadMutation, { chatId: chat.id, messageId }).then(({ markRead }) => onChanged(markRead), reportQuietly);
          }, 300);
        },
        { threshold: 0.5 },
      ),
    [chat.id], // eslint-disable-line react-hooks/exhaustive-deps -- one observer per chat
  );
  useEffect(() => () => observer.disconnect(), [observer]);
  useEffect(() => {
    for (const element of scroller.current?.querySelectorAll<HTMLElement>('li.message:not([data-mine])') ?? []) observer.observe(element);
  }, [sorted, observer]);

  const remove = (message: Message) => {
    if (!confirm('Delete this message for everyone?')) return;
    request(DeleteMessageMutation, { id: message.id }).then(({ deleteMessage }) => merge([deleteMessage]), report);
  };
  const addMember = (user: User) =>
    request(AddChatMembersMutation, { chatId: chat.id, userIds: [user.id] }).then(({ addChatMembers }) => {
      onChanged(addChatMembers);
      setAdding(false);
    }, report);

  const partner = chat.kind === 'DIRECT' ? partnerOf(chat, me) : undefined;
  const manager = chat.myRole === 'OWNER' || chat.myRole === 'ADMIN';
  const typists = [...typing.values()].map((entry) => entry.name);
  const call = useCall();
  const inCall = call !== null && call.phase !== 'ended';

  return (
    <div class="chat">
      <header class="chat-header">
        <button type="button" class="back" onClick={onBack} aria-label="Back to chats">
          ←
        </button>
        <div class="who">
          <h2>{chatTitle(chat, me)}</h2>
          <span class="muted status-line">
            {typists.length > 0 ? (
              <span data-testid="typing">{typists.join(', ')} {typists.length > 1 ? 'are' : 'is'} typing…</span>
            ) : partner ? (
              <span data-testid="presence">
                <PresenceDot presence={presenceOf(partner)} /> {presenceText(presenceOf(partner))}
              </span>
            ) : (
              `Members: ${chat.members.edges.map(({ node }) => displayName(node.user)).join(', ')}${chat.members.pageInfo.hasNextPage ? ' and more' : ''}`
            )}
          </span>
        </div>
        {partner && (
          <button
            type="button"
            class="icon-button"
            aria-label="Voice call"
            title={inCall ? 'You are in a call' : `Call ${displayName(partner)}`}
            disabled={inCall}
            onClick={() => void placeCall(chat.id, displayName(partner))}
          >
            <Icon name="phone" />
          </button>
        )}
        {chat.kind === 'GROUP' && manager && (
          <button type="button" onClick={() => setAdding(!adding)}>
            {adding ? 'Done' : 'Add people'}
          </button>
        )}
      </header>
      {adding && <UserSearch me={me} report={report} onPick={addMember} />}
      <ol class="messages" ref={scroller} onScroll={onScroll} aria-label="Messages">
        {older.loading && <li class="muted history-note">Loading…</li>}
        {!older.loading && !older.more && <li class="muted history-note">{sorted.length ? 'The beginning of this chat' : 'No messages yet. Say hello!'}</li>}
        {sorted.map((message, index) => (
          <MessageItem
            key={message.id}
            message={message}
            me={me}
            showSender={chat.kind === 'GROUP' && sorted[index - 1]?.sender.id !== message.sender.id}
            canDelete={manager && chat.kind === 'GROUP'}
            onReply={(target) => {
              setEditing(null);
              setReplyTo(target);
            }}
            onEdit={(target) => {
              setReplyTo(null);
              setEditing(target);
            }}
            onDelete={remove}
          />
        ))}
      </ol>
      <Composer
        chatId={chat.id}
        replyTo={replyTo}
        editing={editing}
        report={report}
        reportQuietly={reportQuietly}
        onCancel={() => {
          setReplyTo(null);
          setEditing(null);
        }}
        onSent={(message) => {
          atBottom.current = true;
          merge([message]);
        }}
      />
    </div>
  );
}
