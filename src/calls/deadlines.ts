// What a call deadline does when it fires (calls/timers.ts schedules them). Each re-checks the
// call under its lock, so one that fires late, twice, or after the call moved on does nothing wrong.
import { GraphQLError } from 'graphql';
import { finishCall, leaveCall, stopRinging, withLockedCall, type CallServices } from './state.ts';
import type { CallJob } from './timers.ts';

/** Timers fire on their instance's clock; this much early still counts as due. */
const CLOCK_SLACK_MS = 50;

export async function runCallJob(services: CallServices, job: CallJob): Promise<void> {
  try {
    await (job.kind === 'ring' ? ringingDeadline(services, job.callId) : reconnectDeadline(services, job.callId, job.participantId));
  } catch (error) {
    // The call is gone (its chat went with a deleted account): nothing is left to time out.
    if (error instanceof GraphQLError && error.extensions.code === 'NOT_FOUND') return;
    throw error;
  }
}

/**
 * Ringing is over at `ringUntil`: an unanswered call ends MISSED (DECLINED if nobody was left
 * ringing), and in a group call that goes on, members who never answered missed it. Earlier, a
 * call that rings nobody (they all blocked the caller) ends DECLINED.
 */
async function ringingDeadline(services: CallServices, callId: string) {
  await withLockedCall(services, callId, null, async (tx, call, effects) => {
    if (call.state === 'ENDED') return;
    const due = Date.now() >= call.ringUntil.getTime() - CLOCK_SLACK_MS;
    const stillRinging = call.members.some((m) => m.ring === 'RINGING');
    if (call.state === 'RINGING') {
      if (due) await finishCall(tx, call, stillRinging ? 'MISSED' : 'DECLINED', effects);
      else if (!stillRinging) await finishCall(tx, call, 'DECLINED', effects);
    } else if (due) {
      await stopRinging(tx, call, effects);
    }
  });
}

/** A device whose event stream dropped and did not come back within CALL_RECONNECT_SECONDS leaves with FAILED. */
async function reconnectDeadline(services: CallServices, callId: string, participantId: string) {
  const { reconnectMs } = services.config.calls;
  await withLockedCall(services, callId, null, async (tx, call, effects) => {
    const device = call.participants.find((p) => p.id === participantId);
    if (call.state === 'ENDED' || !device?.disconnectedAt) return;
    if (device.disconnectedAt.getTime() + reconnectMs > Date.now() + CLOCK_SLACK_MS) return;
    await leaveCall(tx, call, device, 'FAILED', effects);
  });
}
