// Finds people by username or display name as you type (searchUsers), for new chats and new members.
import { useEffect, useState } from 'preact/hooks';
import { request } from '../api.ts';
import { SearchUsersQuery, type User } from '@kocmoc/client/documents';
import { displayName } from '../format.ts';

interface Props {
  me: User;
  report: (error: unknown) => void;
  /** Users shown as picked (a tick). */
  picked?: ReadonlySet<string>;
  onPick: (user: User) => void;
}

export function UserSearch({ me, report, picked, onPick }: Props) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<User[]>([]);

  useEffect(() => {
    const text = query.trim();
    if (!text) return setFound([]);
    let current = true;
    const timer = setTimeout(() => {
      request(SearchUsersQuery, { query: text }).then((data) => {
        if (current) setFound(data.searchUsers.edges.map(({ node }) => node).filter((user) => user.id !== me.id));
      }, report);
    }, 200);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [query, me.id, report]);

  return (
    <div class="user-search">
      <input type="search" placeholder="Search people by name" aria-label="Search people" value={query} onInput={(event) => setQuery(event.currentTarget.value)} />
      <ul aria-label="People found">
        {found.map((user) => (
          <li key={user.id}>
            <button type="button" onClick={() => onPick(user)} aria-pressed={picked?.has(user.id)}>
              {picked?.has(user.id) ? '✓ ' : ''}
              {displayName(user)} <span class="muted">@{user.username}</span>
            </button>
          </li>
        ))}
        {query.trim() && found.length === 0 && <li class="muted">Nobody found yet.</li>}
      </ul>
    </div>
  );
}
