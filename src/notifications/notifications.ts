// Push notifications for new messages: assembled once for the API (which relays the outbox, and
// without Redis also runs the jobs) and for the worker process (which runs the jobs from Redis).
import type { Agent } from 'node:https';
import type { ContentCipher } from '../crypto/content-cipher.ts';
import type { Config } from '../env.ts';
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import type { PresenceReader } from '../realtime/presence/reader.ts';
import { deliver, fanOut, loadNotifiedMessage, type NotificationDeps, type NotifiedMessage } from './jobs.ts';
import { createOutboxRelay } from './outbox.ts';
import { createBullQueue, createLocalQueue, jobIds, type JobData, type JobProcessor } from './queue.ts';
import { createPushSender } from './web-push.ts';

export interface NotificationsOptions {
  config: Pick<Config, 'push' | 'redisUrl' | 'jobs'>;
  prisma: PrismaClient;
  cipher: ContentCipher;
  presence: PresenceReader;
  logger: Logger;
  /** HTTPS agent for push services (tests trust their local push service's certificate with it). */
  pushAgent?: Agent;
  /** How often the outbox is checked for leftovers. Default 5 s. */
  relayIntervalMs?: number;
}

export type Notifications = ReturnType<typeof createNotifications>;

/** A message's notification is the same for all its recipients: built once per process and minute. */
const MESSAGE_CACHE_MS = 60_000;
const MESSAGE_CACHE_MAX = 1_000;

export function createNotifications(options: NotificationsOptions) {
  const { config, prisma, logger } = options;
  const messages = new Map<string, { message: Promise<NotifiedMessage | null>; until: number }>();
  const process: JobProcessor = (name, data) =>
    name === 'fan-out' ? fanOut(deps, data as JobData['fan-out']) : deliver(deps, data as JobData['deliver']);
  const queue = config.redisUrl ? createBullQueue(config.redisUrl, logger, config.jobs.queuePrefix) : createLocalQueue(process, logger);
  const deps: NotificationDeps = {
    prisma,
    cipher: options.cipher,
    presence: options.presence,
    config,
    logger,
    send: createPushSender({ vapid: config.push.vapid, agent: options.pushAgent }),
    enqueueDeliveries: (jobs) =>
      queue.add('deliver', jobs.map((job) => ({ id: jobIds.deliver(job), data: job })), { delayMs: config.push.collapseWindowMs }),
    notifiedMessage: (messageId) => {
      const cached = messages.get(messageId);
      if (cached && cached.until > Date.now()) return cached.message;
      const message = loadNotifiedMessage({ prisma, cipher: options.cipher }, messageId);
      if (messages.size >= MESSAGE_CACHE_MAX) messages.delete(messages.keys().next().value!);
      messages.set(messageId, { message, until: Date.now() + MESSAGE_CACHE_MS });
      message.catch(() => messages.delete(messageId));
      return message;
    },
  };
  const relay = createOutboxRelay({ prisma, queue, logger, intervalMs: options.relayIntervalMs });

  return {
    queue,
    /** Runs one job (the worker's processor). */
    process,
    /** A message was committed with an outbox row: relay it now rather than at the next interval. */
    messageSent: () => relay.kick(),
    start: () => relay.start(),
    /** Resolves once the outbox is relayed and (in-process) no job is waiting or running: tests count queries after it. */
    async whenIdle(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        await relay.drained();
        const [outbox, depth] = await Promise.all([prisma.notificationOutbox.count(), queue.depth()]);
        if (outbox === 0 && depth === 0) return;
        if (Date.now() > deadline) throw new Error(`notifications still busy: ${outbox} in the outbox, ${depth} jobs`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async stop() {
      await relay.stop();
      await queue.close();
    },
  };
}
