// The call on screen, above the chats: an incoming call (answer or decline), or ours (calling,
// connecting, its time while it runs, and hang up), then for a moment how it ended.
import { useEffect, useState } from 'preact/hooks';
import { answer, decline, dismiss, hangUp, onCallChange, type CallView } from '../calls.ts';
import { Icon } from './Icon.tsx';

/** The call on screen, or null. */
export function useCall(): CallView | null {
  const [call, setCall] = useState<CallView | null>(null);
  useEffect(() => onCallChange(setCall), []);
  return call;
}

/** "0:42", "12:05", "1:02:05". */
function clock(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
  const mm = h > 0 ? String(m).padStart(2, '0') : String(m);
  return `${h > 0 ? `${h}:` : ''}${mm}:${String(s).padStart(2, '0')}`;
}

function stateText(call: CallView, now: number): string {
  if (call.phase === 'calling') return 'Calling…';
  if (call.phase === 'connecting') return 'Connecting…';
  if (call.phase === 'connected') return clock(now - (call.answeredAt ?? now));
  return call.outcome ?? 'Call ended';
}

export function CallBar() {
  const call = useCall();
  const [now, setNow] = useState(Date.now());
  const running = call?.phase === 'connected';
  useEffect(() => {
    if (!running) return;
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, [running]);

  if (!call) return null;
  if (call.phase === 'ringing') {
    return (
      <div class="call-bar ringing" role="region" aria-label="Incoming call" data-testid="incoming-call">
        <Icon name="phone" />
        <span class="call-who">
          <strong>{call.peerName}</strong> is calling you
        </span>
        <button type="button" class="answer" onClick={() => void answer()}>
          Answer
        </button>
        <button type="button" class="hang-up" onClick={() => void decline()}>
          Decline
        </button>
      </div>
    );
  }
  return (
    <div class={`call-bar ${call.phase}`} role="region" aria-label="Call" data-testid="call-bar" data-phase={call.phase}>
      <Icon name="phone" />
      <span class="call-who">
        <strong>{call.peerName}</strong>{' '}
        <span class="call-state" data-testid="call-state" role="status">
          {stateText(call, Math.max(now, call.answeredAt ?? 0))}
        </span>
      </span>
      {call.phase === 'ended' ? (
        <button type="button" aria-label="Dismiss" onClick={dismiss}>
          ×
        </button>
      ) : (
        <button type="button" class="hang-up" onClick={() => void hangUp()}>
          Hang up
        </button>
      )}
    </div>
  );
}
