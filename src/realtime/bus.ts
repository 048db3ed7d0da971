// Publish/subscribe between server instances: through Redis when REDIS_URL is set, in-process
// otherwise. Every listener of an instance receives the same payload object, so work done for an
// event (authorization, execution) can be shared between subscribers.
import { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

export type Handler = (payload: unknown) => void;

export interface EventBus {
  /** Whether events reach other instances (Redis) or only this process. */
  readonly distributed: boolean;
  publish(channel: string, payload: object): Promise<void>;
  /**
   * Calls `handler` for every event on `channel`. Resolves once the subscription is live, so
   * anything published after that is delivered; the returned function stops listening.
   */
  listen(channel: string, handler: Handler): Promise<() => void>;
  /**
   * Calls `handler` each time listening is live again after the connection to Redis was lost:
   * whatever was published meanwhile may never arrive. Returns the function that stops it.
   */
  onReconnect(handler: () => void): () => void;
  close(): Promise<void>;
}

export interface EventBusOptions {
  /** Redis URL; undefined keeps events in this process. */
  redisUrl?: string;
  /** Prefix of every Redis channel, so several deployments can share a Redis. Default `kocmoc:`. */
  channelPrefix?: string;
  logger: Logger;
}

export function createEventBus({ redisUrl, channelPrefix = 'kocmoc:', logger }: EventBusOptions): EventBus {
  return redisUrl ? createRedisBus(redisUrl, channelPrefix, logger) : createLocalBus(logger);
}

export function deliver(handlers: Iterable<Handler>, payload: unknown, logger: Logger) {
  for (const handler of handlers) {
    try {
      handler(payload);
    } catch (error) {
      logger.error({ err: error }, 'event handler failed');
    }
  }
}

function createLocalBus(logger: Logger): EventBus {
  const channels = new Map<string, Set<Handler>>();
  return {
    distributed: false,
    async publish(channel, payload) {
      const handlers = channels.get(channel);
      if (handlers) deliver([...handlers], payload, logger);
    },
    async listen(channel, handler) {
      let handlers = channels.get(channel);
      if (!handlers) channels.set(channel, (handlers = new Set()));
      handlers.add(handler);
      return () => {
        handlers.delete(handler);
        if (handlers.size === 0 && channels.get(channel) === handlers) channels.delete(channel);
      };
    },
    onReconnect: () => () => {},
    async close() {
      channels.clear();
    },
  };
}

interface RedisChannel {
  handlers: Set<Handler>;
  /** Settles when Redis confirmed the SUBSCRIBE. */
  ready: Promise<unknown>;
}

function createRedisBus(url: string, prefix: string, logger: Logger): EventBus {
  const publisher = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  // A subscribed connection can only listen; ioredis re-subscribes by itself after a reconnect.
  const subscriber = new Redis(url, { lazyConnect: false });
  for (const client of [publisher, subscriber]) client.on('error', (error) => logger.warn({ err: error }, 'redis error'));
  const channels = new Map<string, RedisChannel>();
  const reconnectHandlers = new Set<() => void>();

  // ioredis subscribes again by itself after a reconnect; subscribing once more to every channel and
  // waiting for Redis to confirm tells us when listening is live again, which is when a listener
  // can look up what it missed and be sure that anything later arrives as an event.
  let lost = false;
  subscriber.on('close', () => (lost = true));
  subscriber.on('ready', () => {
    if (!lost) return;
    lost = false;
    const names = [...channels.keys()];
    void (names.length > 0 ? subscriber.subscribe(...names) : Promise.resolve()).then(
      () => deliver([...reconnectHandlers], undefined, logger),
      (error: unknown) => logger.warn({ err: error }, 'redis resubscribe failed'),
    );
  });

  subscriber.on('message', (redisChannel: string, message: string) => {
    const state = channels.get(redisChannel);
    if (!state) return;
    let payload: unknown;
    try {
      payload = JSON.parse(message);
    } catch {
      logger.warn({ channel: redisChannel }, 'ignored a malformed event');
      return;
    }
    deliver([...state.handlers], payload, logger);
  });

  return {
    distributed: true,
    async publish(channel, payload) {
      await publisher.publish(prefix + channel, JSON.stringify(payload));
    },
    async listen(channel, handler) {
      const redisChannel = prefix + channel;
      let state = channels.get(redisChannel);
      if (!state) {
        state = { handlers: new Set(), ready: subscriber.subscribe(redisChannel) };
        channels.set(redisChannel, state);
      }
      state.handlers.add(handler);
      const current = state;
      await current.ready;
      return () => {
        current.handlers.delete(handler);
        if (current.handlers.size > 0 || channels.get(redisChannel) !== current) return;
        channels.delete(redisChannel);
        subscriber.unsubscribe(redisChannel).catch((error) => logger.warn({ err: error }, 'redis unsubscribe failed'));
      };
    },
    onReconnect(handler) {
      reconnectHandlers.add(handler);
      return () => reconnectHandlers.delete(handler);
    },
    async close() {
      reconnectHandlers.clear();
      channels.clear();
      await Promise.allSettled([publisher.quit(), subscriber.quit()]);
    },
  };
}
