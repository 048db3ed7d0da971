// How times, sizes and people read on screen.
import type { Call, User } from '@kocmoc/client/documents';

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

/** "45 s", "2 min", "1 h 5 min": how long a call lasted. */
export function callDuration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

type CallSummary = Pick<Call, 'media' | 'state' | 'endReason' | 'durationSeconds'>;

/**
 * A call in the timeline, as messengers word it: "Voice call, 2 min" once answered, "Missed voice
 * call" for the one called, "Voice call, no answer" for the caller. `mine`: I called.
 */
export function callText(call: CallSummary, mine: boolean): string {
  const kind = call.media === 'VIDEO' ? 'video call' : 'voice call';
  const Kind = kind[0]!.toUpperCase() + kind.slice(1);
  if (call.durationSeconds != null) return call.state === 'ENDED' ? `${Kind}, ${callDuration(call.durationSeconds)}` : `${Kind} in progress`;
  if (call.state !== 'ENDED') return mine ? `Outgoing ${kind}` : `Incoming ${kind}`;
  if (!mine) return call.endReason === 'DECLINED' ? `Declined ${kind}` : `Missed ${kind}`;
  const outcome = { MISSED: 'no answer', DECLINED: 'declined', BUSY: 'busy', HANGUP: 'cancelled', FAILED: 'failed', ANSWERED_ELSEWHERE: 'answered elsewhere' } as const;
  return `${Kind}, ${call.endReason ? outcome[call.endReason] : 'ended'}`;
}
