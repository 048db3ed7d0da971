// The signed-in screen: chat list (live: last message, unread counts, presence) and the open chat.
// The list follows three subscriptions: messageEvents for every chat (a changed chat is fetched
// again, so its unread count and last message are the server's), chatEvents (new chats, members),
// and presence for everyone in the list. After a reconnect the list is fetched again. Calls ring
// here whichever chat is open (callEvents, calls.ts), in the bar under the header.
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { request } from '../api.ts';
import { hangUp, watchCalls } from '../calls.ts';
import { ChatQuery, ChatEventsSubscription, ChatsQuery, MessageEventsSubscription, PresenceSubscription, type ChatSummary, type User } from '@kocmoc/client/documents';
import type { Presence } from '../format.ts';
import { closeSocket, live, onConnectionState, type ConnectionState } from '../live.ts';
import { enablePush, pushState, type PushState } from '../push.ts';
import { logout } from '../session.ts';
import { ApiError, describe } from '../transport.ts';
import { CallBar } from './CallBar.tsx';
import { ChatList } from './ChatList.tsx';
import { ChatView } from './ChatView.tsx';
import { Icon } from './Icon.tsx';
import { NewChat } from './NewChat.tsx';

const chatIdFromHash = () => /^#\/chat\/([\w-]+)$/.exec(location.hash)?.[1] ?? null;
const PRESENCE_MAX_USERS = 200;

export function Messenger({ me }: { me: User }) {
  const [chats, setChats] = useState<Map<string, ChatSummary>>(new Map());
  const [presence, setPresence] = useState<Map<string, Presence>>(new Map());
  const [openId, setOpenId] = useState(chatIdFromHash);
  const [connection, setConnection] = useState<ConnectionState>('idle');
  const [errors, setErrors] = useState<Array<{ id: number; text: string }>>([]);
  const [newChat, setNewChat] = useState(false);
  const [push, setPush] = useState<PushState>('unsupported');

  const report = useCallback((error: unknown) => {
    const id = Date.now() + Math.random();
    const text = describe(error);
    // The same words twice (several requests failing alike) make one message.
    setErrors((list) => (list.some((entry) => entry.text === text) ? list : [...list.slice(-2), { id, text }]));
    setTimeout(() => setErrors((list) => list.filter((entry) => entry.id !== id)), 8_000);
  }, []);

  // Background work (refreshing the list, marking read) that fails for want of a connection while
  // the banner already says so is not reported again; the list is fetched anew on reconnect.
  const connectionRef = useRef(connection);
  connectionRef.current = connection;
  const reportQuietly = useCallback(
    (error: unknown) => {
      if (error instanceof ApiError && error.code === 'NETWORK' && connectionRef.current !== 'connected') return;
      report(error);
    },
    [report],
  );

  const upsert = useCallback((chat: ChatSummary) => setChats((map) => new Map(map).set(chat.id, chat)), []);
  const forget = useCallback((id: string) => setChats((map) => (map.delete(id) ? new Map(map) : map)), []);

  /** Where the next page of older chats starts; null when there is none. */
  const [moreChats, setMoreChats] = useState<string | null>(null);
  const loadAll = useCallback(() => {
    request(ChatsQuery, {}).then((data) => {
      setChats(new Map(data.chats.edges.map(({ node }) => [node.id, node])));
      setMoreChats(data.chats.pageInfo.hasNextPage ? (data.chats.pageInfo.endCursor ?? null) : null);
      setPresence(new Map()); // the statuses just fetched are the newest
    }, reportQuietly);
  }, [reportQuietly]);
  const loadMoreChats = () =>
    request(ChatsQuery, { after: moreChats }).then((data) => {
      setChats((map) => new Map([...map, ...data.chats.edges.map(({ node }) => [node.id, node] as const)]));
      setMoreChats(data.chats.pageInfo.hasNextPage ? (data.chats.pageInfo.endCursor ?? null) : null);
    }, report);

  // Bursts of events about one chat become one fetch of it; of fetches that overlap, the answer of
  // the newest wins (an older one may come back later, with an older unread count).
  const pending = useRef(new Map<string, ReturnType<typeof setTimeout>>());
  const latest = useRef(new Map<string, number>());
  const refreshChat = useCallback(
    (id: string) => {
      clearTimeout(pending.current.get(id));
      pending.current.set(
        id,
        setTimeout(() => {
          pending.current.delete(id);
          const ticket = (latest.current.get(id) ?? 0) + 1;
          latest.current.set(id, ticket);
          // chat(id:) is null for a chat you are no longer in.
          request(ChatQuery, { id }).then((data) => latest.current.get(id) === ticket && (data.chat ? upsert(data.chat) : forget(id)), reportQuietly);
        }, 150),
      );
    },
    [upsert, forget, reportQuietly],
  );

  useEffect(loadAll, [loadAll]);
  useEffect(() => onConnectionState(setConnection), []);
  useEffect(() => closeSocket, []);
  useEffect(() => watchCalls(me, report), [me, report]);
  useEffect(() => void pushState().then(setPush), []);
  useEffect(() => {
    const onHash = () => setOpenId(chatIdFromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(
    () => live(MessageEventsSubscription, (data) => refreshChat(data.messageEvents.chatId), { variables: () => ({}), onResume: loadAll, onError: report }),
    [refreshChat, loadAll, report],
  );
  useEffect(() => live(ChatEventsSubscription, (data) => refreshChat(data.chatEvents.chatId), { variables: () => ({}), onError: report }), [refreshChat, report]);

  // Presence of everyone in the list; subscribed again when that set changes.
  const people = useMemo(() => {
    const ids = new Set<string>();
    for (const chat of chats.values()) for (const { node } of chat.members.edges) if (node.user.id !== me.id) ids.add(node.user.id);
    return [...ids].sort().slice(0, PRESENCE_MAX_USERS);
  }, [chats, me.id]);
  const peopleKey = people.join(',');
  useEffect(() => {
    if (people.length === 0) return;
    return live(
      PresenceSubscription,
      ({ presence: event }) => setPresence((map) => new Map(map).set(event.user.id, { status: event.status, lastSeenAt: event.lastSeenAt })),
      { variables: () => ({ userIds: people }), onResume: loadAll, onError: report },
    );
  }, [peopleKey]); // eslint-disable-line react-hooks/exhaustive-deps -- people changes with peopleKey

  const presenceOf = useCallback((user: User): Presence => presence.get(user.id) ?? user, [presence]);

  const open = (id: string | null) => {
    location.hash = id ? `#/chat/${id}` : '';
    setOpenId(id);
    setNewChat(false);
  };
  const openChat = openId ? chats.get(openId) : undefined;

  // A call in progress is hung up first (signed out, this device could not).
  const signOut = () => hangUp().then(logout).catch(report);
  const turnOnPush = () => enablePush().then(setPush, report);

  return (
    <div class={`messenger ${openChat || newChat ? 'chat-open' : ''}`}>
      <header class="top">
        <strong class="brand">
          <img src="/icon.svg" alt="" width={24} height={24} /> Kocmoc
        </strong>
        <span class="me" data-testid="me">
          {me.displayName}
        </span>
        <nav>
          {push === 'available' && (
            <button type="button" onClick={turnOnPush} title="Get a notification for new messages while this page is closed">
              <Icon name="bell" /> <span class="wide-only">Enable notifications</span>
            </button>
          )}
          {push === 'denied' && <span class="muted">Notifications blocked</span>}
          <a href="/graphql" title="The API in GraphiQL">
            GraphiQL
          </a>
          <button type="button" onClick={signOut}>
            Sign out
          </button>
        </nav>
      </header>
      <div class="bars">
        {connection === 'reconnecting' && (
          <div class="banner" role="status" data-testid="reconnecting">
            Connection lost. Reconnecting… Messages sent meanwhile appear once it is back.
          </div>
        )}
        <CallBar />
      </div>
      <div class="toasts">
        {errors.map((error) => (
          <p key={error.id} class="toast" role="alert">
            {error.text}
            <button type="button" aria-label="Dismiss" onClick={() => setErrors((list) => list.filter((entry) => entry.id !== error.id))}>
              ×
            </button>
          </p>
        ))}
      </div>
      <aside class="sidebar">
        <button type="button" class="primary new-chat" onClick={() => setNewChat(true)}>
          New chat
        </button>
        <ChatList chats={[...chats.values()]} me={me} openId={openId} presenceOf={presenceOf} onOpen={open} />
        {moreChats && (
          <button type="button" class="more-chats" onClick={loadMoreChats}>
            Show older chats
          </button>
        )}
      </aside>
      <section class="chat-pane">
        {newChat ? (
          <NewChat
            me={me}
            report={report}
            onCancel={() => setNewChat(false)}
            onCreated={(chat) => {
              upsert(chat);
              open(chat.id);
            }}
          />
        ) : openChat ? (
          <ChatView
            key={openChat.id}
            chat={openChat}
            me={me}
            presenceOf={presenceOf}
            report={report}
            reportQuietly={reportQuietly}
            onBack={() => open(null)}
            onChanged={(patch) => {
              const { id } = openChat;
              setChats((map) => {
                const current = map.get(id);
                return current ? new Map(map).set(id, { ...current, ...patch }) : map;
              });
              refreshChat(id);
            }}
          />
        ) : (
          <p class="empty muted">Pick a chat, or start a new one.</p>
        )}
      </section>
    </div>
  );
}
