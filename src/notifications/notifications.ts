// Push notifications for new messages: assembled once for the API (which relays the outbox, and
// without Redis also runs the jobs) and for the worker process (which runs the jobs from Redis).
import type { AgentOptions } from 'node:https';
import type { Tracer } from '@opentelemetry/api';
import type { ContentCipher } from '../crypto/content-cipher.ts';
import type { Config } from '../env.ts';
import type { PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import type { PresenceReader } from '../realtime/presence/reader.ts';
import { checkPushEndpoint, type EndpointPolicy, type HostResolver } from './endpoints.ts';
import { deliverCallPush, fanOutCallPush } from './call-pushes.ts';
import { deliver, enqueueForOffline, fanOut, fanOutMention, loadNotifiedMessage, type NotificationDeps, type NotifiedMessage } from './jobs.ts';
import { createOutboxRelay } from './outbox.ts';
import { createBullQueue, createLocalQueue, jobIds, type JobData, type JobProcessor } from './queue.ts';
import { createPushSender } from './web-push.ts';

export interface NotificationsOptions {
  config: Pick<Config, 'push' | 'redisUrl' | 'jobs'>;
  prisma: PrismaClient;
  cipher: ContentCipher;
  presence: PresenceReader;
  logger: Logger;
  /** TLS options for connections to push services (tests trust their local push service's certificate with it). */
  pushTls?: Pick<AgentOptions, 'ca'>;
  /** Resolves push endpoint hosts, at registration and delivery. Default: the system resolver (tests answer without DNS). */
  resolveHost?: HostResolver;
  /** How often the outbox is checked for leftovers. Default 5 s. */
  relayIntervalMs?: number;
  /** With tracing on: jobs run in this process (without Redis) get a `job <name>` span. Default none. */
  tracer?: Tracer;
}

export type Notifications = ReturnType<typeof createNotifications>;

/** A message's notification is the same for all its recipients: built once per process and minute. */
const MESSAGE_CACHE_MS = 60_000;
const MESSAGE_CACHE_MAX = 1_000;

export function createNotifications(options: NotificationsOptions) {
  const { config, prisma, logger } = options;
  const endpoints: EndpointPolicy = { allowPrivate: config.push.allowPrivateEndpoints, resolve: options.resolveHost };
  const messages = new Map<string, { message: Promise<NotifiedMessage | null>; until: number }>();
  const process: JobProcessor = (name, data) => {
    if (name === 'call-fan-out') return fanOutCallPush(callDeps, data as JobData['call-fan-out']);
    if (name === 'call-deliver') return deliverCallPush(callDeps, data as JobData['call-deliver']);
    if (name === 'mention-fan-out') return fanOutMention(deps, data as JobData['mention-fan-out']);
    return name === 'fan-out' ? fanOut(deps, data as JobData['fan-out']) : deliver(deps, data as JobData['deliver']);
  };
  const queue = config.redisUrl ? createBullQueue(config.redisUrl, logger, config.jobs.queuePrefix) : createLocalQueue(process, logger, options.tracer);
  const deps: NotificationDeps = {
    prisma,
    cipher: options.cipher,
    presence: options.presence,
    logger,
    send: createPushSender({ vapid: config.push.vapid, endpoints, tls: options.pushTls }),
    enqueueDeliveries: (jobs) =>
      queue.add('deliver', jobs.map((job) => ({ id: jobIds.deliver(job), data: job })), { delayMs: config.push.collapseWindowMs }),
    notifiedMessage: (messageId, editId) => {
      const key = editId ? `${messageId}:${editId}` : messageId;
      const cached = messages.get(key);
      if (cached && cached.until > Date.now()) return cached.message;
      const message = loadNotifiedMessage({ prisma, cipher: options.cipher }, messageId);
      if (messages.size >= MESSAGE_CACHE_MAX) messages.delete(messages.keys().next().value!);
      messages.set(key, { message, until: Date.now() + MESSAGE_CACHE_MS });
      message.catch(() => messages.delete(key));
      return message;
    },
  };
  const callDeps = {
    ...deps,
    enqueueCallDeliveries: (jobs: JobData['call-deliver'][]) => queue.add('call-deliver', jobs.map((job) => ({ id: jobIds.callDeliver(job), data: job }))),
  };
  const enqueueSafely = async (name: 'call-fan-out', jobs: Array<{ id: string; data: JobData['call-fan-out'] }>) => {
    try {
      await queue.add(name, jobs);
    } catch (error) {
      logger.warn({ err: error }, 'could not queue call pushes');
    }
  };
  // Without Redis the relay fans out itself, one statement per batch (outbox.ts).
  const relay = createOutboxRelay({ prisma, queue, logger, intervalMs: options.relayIntervalMs, deliverInProcess: (recipients) => enqueueForOffline(deps, recipients) });

  return {
    queue,
    /** At registration: the endpoint as a URL if pushes may go there; BAD_USER_INPUT on `input.endpoint` otherwise. */
    checkEndpoint: (endpoint: string) => checkPushEndpoint(endpoint, endpoints),
    /** Runs one job (the worker's processor). */
    process,
    /** A message (or an edit's new mentions) was committed with an outbox row: relay it now rather than at the next interval. */
    messageSent: () => relay.kick(),
    /** A call started ringing: push to every device of the members it rings. Logged, never thrown: the call goes on without. */
    callRinging: (callId: string) => enqueueSafely('call-fan-out', [{ id: jobIds.callFanOut(callId, 'incoming'), data: { callId, event: 'incoming' } }]),
    /** The member answered on one device: their other devices stop ringing (those that rang through a push too). */
    callAnsweredElsewhere: (callId: string, userId: string, sessionId: string) =>
      enqueueSafely('call-fan-out', [
        { id: jobIds.callFanOut(callId, 'answered', userId), data: { callId, event: 'answered-elsewhere', userIds: [userId], exceptSessionId: sessionId } },
      ]),
    /** These members missed the call: a "missed call" push to each of their devices. */
    callMissed: (callId: string, userIds: string[]) =>
      enqueueSafely(
        'call-fan-out',
        userIds.map((userId) => ({ id: jobIds.callFanOut(callId, 'missed', userId), data: { callId, event: 'missed' as const, userIds: [userId] } })),
      ),
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
