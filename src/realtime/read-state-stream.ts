// readStateEvents: the viewer's read position moved in one of their chats (on this device or
// another), for as long as they are a member of it.
import type { Services } from '../services.ts';
import { channels, type ReadStateTopicEvent } from './events.ts';
import { openStream } from './stream.ts';
import { isMemberNow } from './streams.ts';

export function readStateStream({ events, prisma }: Pick<Services, 'events' | 'prisma'>, viewerId: string) {
  return openStream<ReadStateTopicEvent>(async (controls) =>
    events.bus.listen(channels.readState(viewerId), (payload) => {
      const event = payload as ReadStateTopicEvent;
      controls.enqueue(async () => {
        if (await isMemberNow(prisma, event, viewerId)) controls.emit(event);
      });
    }),
  );
}
