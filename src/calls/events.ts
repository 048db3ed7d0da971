// Call events on the bus: one channel per user, which every event stream of theirs (one per
// device session) listens to; an event addressed to some devices names them, and each stream keeps
// what is for its own device. Like every bus event they are small; streams load the call fresh.
import type { CallSignalKind } from './signals-input.ts';
import type { EventBus } from '../realtime/bus.ts';

export type CallEventType = 'INCOMING' | 'STATE_CHANGED' | 'SIGNAL' | 'ANSWERED_ELSEWHERE';

export interface RelayedSignal {
  fromDeviceId: string;
  kind: CallSignalKind;
  payload: string;
}

export interface CallTopicEvent {
  type: CallEventType;
  callId: string;
  /** Only these device sessions get it. */
  onlySessionIds?: string[];
  /** Every device session of the user but this one gets it. */
  exceptSessionId?: string;
  /** STATE_CHANGED because this device joined: its stream starts speaking for it (calls/stream.ts). */
  joinedSessionId?: string;
  signal?: RelayedSignal;
}

export const callChannel = (userId: string) => `calls:${userId}`;

/** Whether the stream of `sessionId` delivers `event`. */
export function isForDevice(event: CallTopicEvent, sessionId: string): boolean {
  if (event.onlySessionIds && !event.onlySessionIds.includes(sessionId)) return false;
  return event.exceptSessionId !== sessionId;
}

/** Publishes `event` to each user; a publish that fails is logged by the caller's `safely`, never thrown. */
export async function publishCallEvent(bus: EventBus, userIds: Iterable<string>, event: CallTopicEvent): Promise<void> {
  await Promise.all([...new Set(userIds)].map((userId) => bus.publish(callChannel(userId), event)));
}
