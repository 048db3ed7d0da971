// The callEvents stream of one device session. While it is open it speaks for the device in
// its calls: when it closes (the socket dropped), the device has CALL_RECONNECT_SECONDS to open
// another before it leaves with FAILED. Each stream has an id, written on the device's call rows,
// so an old stream that an instance only notices closing after the device came back (elsewhere)
// changes nothing. A device that subscribes while a call rings it gets INCOMING at once (so
// INCOMING may come twice for one call: key calls by id).
import type { Viewer } from '../auth/authenticate.ts';
import { uuidv7 } from '../ids.ts';
import { openStream } from '../realtime/stream.ts';
import { callChannel, isForDevice, type CallTopicEvent } from './events.ts';
import type { CallServices } from './state.ts';

export function callEventStream(services: CallServices, viewer: Viewer) {
  const { prisma, events, calls } = services;
  const streamId = uuidv7();
  const { sessionId } = viewer;

  /** This stream speaks for the device in its calls (all of them, or the one it just joined). */
  const claim = (callId?: string) =>
    prisma.callParticipant.updateMany({
      where: { sessionId, leftAt: null, ...(callId ? { callId, streamId: null } : {}) },
      data: { streamId, disconnectedAt: null },
    });

  return openStream<CallTopicEvent>(async (controls) => {
    const stop = await events.bus.listen(callChannel(viewer.userId), (payload) => {
      const event = payload as CallTopicEvent;
      if (!isForDevice(event, sessionId)) return;
      if (event.joinedSessionId === sessionId) calls.track(claim(event.callId));
      // Another instance changed the call: signals relayed here check it afresh.
      if (event.type !== 'SIGNAL') calls.forgetCall(event.callId);
      controls.emit(event);
    });
    await claim();
    // A device that connects while a call rings it (woken by the push, say) rings too.
    const ringing = await prisma.callMember.findMany({
      where: { userId: viewer.userId, ring: 'RINGING', call: { state: { not: 'ENDED' } } },
      select: { callId: true },
    });
    for (const { callId } of ringing) controls.emit({ type: 'INCOMING', callId });
    return () => {
      stop();
      calls.markAway({ sessionId, OR: [{ streamId }, { streamId: null }] });
    };
  });
}
