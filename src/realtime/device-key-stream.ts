// deviceKeyEvents: what one device session hears about end-to-end encryption keys. DEVICES_CHANGED
// reaches every device of every user sharing a chat with the one whose devices changed (published
// to each of them, src/devices/devices.ts); ONE_TIME_PRE_KEYS_LOW only the device it is about.
import type { Viewer } from '../auth/authenticate.ts';
import type { Services } from '../services.ts';
import { channels, type DeviceKeyTopicEvent } from './events.ts';
import { openStream } from './stream.ts';

export function deviceKeyEventStream({ events }: Pick<Services, 'events'>, viewer: Viewer) {
  return openStream<DeviceKeyTopicEvent>(async (controls) =>
    events.bus.listen(channels.deviceKeys(viewer.userId), (payload) => {
      const event = payload as DeviceKeyTopicEvent;
      if (event.kind === 'ONE_TIME_PRE_KEYS_LOW' && event.deviceId !== viewer.sessionId) return;
      controls.emit(event);
    }),
  );
}
