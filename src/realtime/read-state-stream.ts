// Streams of the viewer's own state in their chats, told to all their connections: readStateEvents
// (the read position moved, on this device or another) and draftEvents (a draft saved or cleared).
// Each event is about one chat and delivered while the viewer is a member of it.
import type { Services } from '../services.ts';
import { channels, type DraftTopicEvent, type ReadStateTopicEvent } from './events.ts';
import { openStream } from './stream.ts';

type OwnStateServices = Pick<Services, 'events' | 'chatFeeds'>;

function ownChatStateStream<T extends { chatId: string }>({ events, chatFeeds }: OwnStateServices, channel: string, viewerId: string) {
  return openStream<T>(async (controls) =>
    events.bus.listen(channel, (payload) => {
      const event = payload as T;
      controls.enqueue(async () => {
        if (await chatFeeds.isMember(event, viewerId)) controls.emit(event);
      });
    }),
  );
}

export const readStateStream = (services: OwnStateServices, viewerId: string) =>
  ownChatStateStream<ReadStateTopicEvent>(services, channels.readState(viewerId), viewerId);

export const draftStream = (services: OwnStateServices, viewerId: string) =>
  ownChatStateStream<DraftTopicEvent>(services, channels.drafts(viewerId), viewerId);
