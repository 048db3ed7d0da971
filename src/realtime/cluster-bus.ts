// The event bus on a Redis Cluster, over sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis >= 7): each
// channel (one per chat, per user, ...) lives on the master that owns its hash slot, so fan-out
// spreads across masters instead of every message reaching every node as classic PUBLISH does.
// One subscriber connection per master this instance listens on. When one drops (a master died,
// its slots moved), the slot map is refreshed until every channel is subscribed again on its
// current master, and only then are the onReconnect handlers told, so they can read what was
// missed knowing that anything later arrives as an event. Resharding takes the same path: when a
// slot moves, its old master pushes `sunsubscribe` for the slot's channels (Redis >= 7) and a
// subscribe sent to a stale master is answered MOVED; either way the slot map is refreshed and the
// channel subscribed again on its new master, and the handlers read what was missed meanwhile.
import calculateSlot from 'cluster-key-slot';
import { Redis, type Cluster } from 'ioredis';
import type { Logger } from '../logger.ts';
import { deliver, type EventBus, type Handler } from './bus.ts';

export interface ClusterBusOptions {
  /** Publishes, and knows the slot map (connectRedis on a cluster target). */
  cluster: Cluster;
  /** Prefix of every channel. Default `kocmoc:`. */
  channelPrefix?: string;
  logger: Logger;
  /** Pause between attempts to subscribe again after a connection dropped. Default 250 ms. */
  resyncDelayMs?: number;
  /** How long a publish may wait (for a failover to finish) before the event is given up. Default 2000 ms. */
  publishTimeoutMs?: number;
  /** How long an SSUBSCRIBE may wait for its confirmation before it is tried again through resync. Default 5000 ms. */
  subscribeTimeoutMs?: number;
}

interface Subscriber {
  node: string;
  redis: Redis;
  channels: Set<string>;
}

/**
 * ioredis' error for a reply it cannot pair with a command. On a sharded subscriber it follows a
 * `sunsubscribe` the server pushed for every channel of a slot the node no longer serves
 * (resharding): paired with no command, or with one still in flight, whose own reply then finds none.
 */
const REPLY_OUT_OF_STEP = /Command queue state error/;

/** Settles with `command`, or rejects when the node answers MOVED (ioredis then drops the command unanswered) or after `timeoutMs`. */
async function confirmed(redis: Redis, command: Promise<unknown>, timeoutMs: number): Promise<void> {
  let onMoved!: () => void;
  let timer: NodeJS.Timeout | undefined;
  const refused = new Promise<never>((_, reject) => {
    onMoved = () => reject(new Error('SSUBSCRIBE answered MOVED: the slot has moved'));
    timer = setTimeout(() => reject(new Error(`SSUBSCRIBE not confirmed within ${timeoutMs} ms`)), timeoutMs);
  });
  redis.once('moved', onMoved);
  try {
    await Promise.race([command, refused]);
  } finally {
    redis.off('moved', onMoved);
    clearTimeout(timer);
  }
}

export function createClusterBus({ cluster, channelPrefix = 'kocmoc:', logger, resyncDelayMs = 250, publishTimeoutMs = 2_000, subscribeTimeoutMs = 5_000 }: ClusterBusOptions): EventBus {
  const handlersByChannel = new Map<string, Set<Handler>>();
  const subscribers = new Map<string, Subscriber>();
  const reconnectHandlers = new Set<() => void>();
  let closed = false;
  let resyncing: Promise<void> | undefined;
  // The slot map is known once the cluster is ready; commands sent before wait in ioredis' queue.
  const ready = cluster.status === 'ready' ? Promise.resolve() : new Promise<void>((resolve) => cluster.once('ready', () => resolve()));

  const masterOf = (channel: string): string | undefined => cluster.slots[calculateSlot(channel)]?.[0];

  const onMessage = (channel: string, message: string) => {
    const handlers = handlersByChannel.get(channel);
    if (!handlers) return;
    let payload: unknown;
    try {
      payload = JSON.parse(message);
    } catch {
      logger.warn({ channel }, 'ignored a malformed event');
      return;
    }
    deliver([...handlers], payload, logger);
  };

  const subscriberFor = (node: string): Subscriber => {
    let subscriber = subscribers.get(node);
    if (subscriber) return subscriber;
    const at = node.lastIndexOf(':');
    // No reconnecting and no resubscribing by itself: a dropped subscriber is replaced by resync().
    const redis = new Redis({ host: node.slice(0, at), port: Number(node.slice(at + 1)), retryStrategy: () => null, autoResubscribe: false, maxRetriesPerRequest: 1 });
    subscriber = { node, redis, channels: new Set() };
    const current = subscriber;
    redis.on('error', (error) => {
      if (!REPLY_OUT_OF_STEP.test(error.message)) return logger.warn({ err: error, node }, 'redis error (sharded subscriber)');
      // A slot of ours moved, and this connection's bookkeeping cannot be trusted any more: drop
      // it, and resync() subscribes its channels again, each on its slot's current master.
      logger.info({ node }, 'a subscribed slot moved off this master: resubscribing');
      redis.disconnect();
    });
    redis.on('smessage', onMessage);
    redis.on('close', () => {
      if (subscribers.get(node) !== current) return;
      subscribers.delete(node);
      if (!closed) void resync();
    });
    subscribers.set(node, subscriber);
    return subscriber;
  };

  const subscribe = async (channel: string) => {
    const node = masterOf(channel);
    if (!node) throw new Error(`no master known for channel ${channel}`);
    const subscriber = subscriberFor(node);
    subscriber.channels.add(channel);
    try {
      await confirmed(subscriber.redis, subscriber.redis.ssubscribe(channel), subscribeTimeoutMs);
    } catch (error) {
      subscriber.channels.delete(channel);
      throw error;
    }
  };

  /** Until every channel is subscribed on its slot's current master: then the handlers are told. */
  const resync = () =>
    (resyncing ??= (async () => {
      while (!closed) {
        await new Promise((resolve) => setTimeout(resolve, resyncDelayMs));
        try {
          await new Promise<void>((resolve, reject) => cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve())));
          for (const subscriber of [...subscribers.values()]) {
            for (const channel of subscriber.channels) if (masterOf(channel) !== subscriber.node) subscriber.channels.delete(channel);
          }
          const missing = [...handlersByChannel.keys()].filter((channel) => !subscribers.get(masterOf(channel) ?? '')?.channels.has(channel));
          await Promise.all(missing.map(subscribe));
          for (const subscriber of [...subscribers.values()]) if (subscriber.channels.size === 0) subscriber.redis.disconnect();
          break;
        } catch (error) {
          logger.warn({ err: error }, 'redis cluster resubscribe failed; retrying');
        }
      }
      resyncing = undefined;
      if (!closed) deliver([...reconnectHandlers], undefined, logger);
    })());

  return {
    distributed: true,
    async publish(channel, payload) {
      // During a failover a command can wait for the new master for seconds; the mutation that
      // publishes should not. An event given up on is a gap that subscribers fill from the database.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`SPUBLISH took over ${publishTimeoutMs} ms`)), publishTimeoutMs);
      });
      try {
        await Promise.race([cluster.spublish(channelPrefix + channel, JSON.stringify(payload)), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async listen(channel, handler) {
      const redisChannel = channelPrefix + channel;
      let handlers = handlersByChannel.get(redisChannel);
      const first = !handlers;
      if (!handlers) handlersByChannel.set(redisChannel, (handlers = new Set()));
      handlers.add(handler);
      if (first) {
        await ready;
        // A stale slot map or a dropped node: resync() subscribes it with the rest.
        await subscribe(redisChannel).catch(() => resync());
      } else if (resyncing) {
        await resyncing;
      }
      return () => {
        handlers.delete(handler);
        if (handlers.size > 0 || handlersByChannel.get(redisChannel) !== handlers) return;
        handlersByChannel.delete(redisChannel);
        const subscriber = [...subscribers.values()].find((candidate) => candidate.channels.delete(redisChannel));
        subscriber?.redis.sunsubscribe(redisChannel).catch((error) => logger.warn({ err: error }, 'redis sunsubscribe failed'));
      };
    },
    onReconnect(handler) {
      reconnectHandlers.add(handler);
      return () => reconnectHandlers.delete(handler);
    },
    async close() {
      closed = true;
      reconnectHandlers.clear();
      handlersByChannel.clear();
      const open = [...subscribers.values()];
      subscribers.clear();
      await Promise.allSettled([cluster.quit(), ...open.map((subscriber) => subscriber.redis.quit())]);
    },
  };
}
