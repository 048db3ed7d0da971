// How times, sizes and people read on screen.
import type { User } from './documents.ts';

export const displayName = (user: Pick<User, 'displayName' | 'username'>) => user.displayName || user.username;

export function timeOf(iso: string): string {
  return new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** "just now", "5 min ago", "3 h ago", else the date. */
export function ago(iso: string, now = Date.now()): string {
  const seconds = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function bytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

export type Presence = Pick<User, 'status' | 'lastSeenAt'>;

/** What a presence dot's label says. */
export function presenceText({ status, lastSeenAt }: Presence): string {
  if (status === 'OFFLINE') return lastSeenAt ? `last seen ${ago(lastSeenAt)}` : 'offline';
  return { ONLINE: 'online', BUSY: 'busy', AWAY: 'away' }[status];
}
