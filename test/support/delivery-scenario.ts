// Issue #22's run: two API instances on one PostgreSQL and one Redis, group chats whose members
// all follow them with resuming subscribers, senders that retry until acknowledged, and in turn
// instance 2 killed with SIGKILL (then started again), Redis killed and restarted, PostgreSQL out
// of reach, and a feed whose gap fill fails (an event lost while the database stays out of reach
// past FEED_GAP_TIMEOUT_MS). The fault test and the soak bench run it at different sizes.
import type { App } from '../../src/server/app.ts';
import { startSender, startSubscriber, textOf, type Sender, type Subscriber } from './delivery-clients.ts';
import { sendWithoutEvent, type ApiInstance, type DatabaseOutage, type RedisServer } from './faults.ts';

export interface ScenarioChat {
  id: string;
  members: Array<{ id: string; token: string }>;
}

export interface DeliveryScenarioOptions {
  /** Instance 1, in this process (the gap fault sends through its services); `url` is its endpoint. */
  first: { app: App; url: string };
  /** Instance 2, the one killed. */
  second: ApiInstance;
  redis: RedisServer;
  /** Makes PostgreSQL unreachable for a moment and waits until it is back. */
  databaseFault: { name: string; run(): Promise<void> };
  /** Connections refused for longer than FEED_GAP_TIMEOUT_MS in the gap fault. */
  outage: DatabaseOutage;
  /** FEED_GAP_TIMEOUT_MS of both instances. */
  gapTimeoutMs: number;
  chats: ScenarioChat[];
  /** Members of each chat that send (each one message at a time). */
  sendersPerChat: number;
  senderPauseMs: number;
  /** Rounds of all the faults go on until this many rounds ran and at least this many messages were acknowledged. */
  until: { rounds?: number; messages?: number };
  /** Calm time after each fault. */
  settleMs: number;
  /** Mean time between a subscriber's own socket drops. */
  dropEveryMs: number;
  /** Longest wait at the end for every subscriber to have every position of its chat. */
  drainTimeoutMs: number;
  log?: (line: string) => void;
}

export interface PhaseReport {
  name: string;
  /** Time from each message's first attempt to its acknowledgement, for messages first sent during the phase. */
  ackDelaysMs: number[];
  /** Deliveries of the messages first sent during the phase (each subscriber's first, not repeats). */
  deliveries: number;
  /** Send-to-delivery times of the deliveries of messages first sent during the phase. */
  delaysMs: number[];
}

export interface DeliveryReport {
  acknowledged: number;
  /** Messages stored in the chats: the acknowledged ones and the gap fault's, each once. */
  stored: number;
  gapMessages: number;
  /** Every position of each subscriber's chat, over all subscribers. */
  expectedDeliveries: number;
  delivered: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  completedByServer: number;
  /** Retries answered with another message than the first answer: must stay 0. */
  mismatchedRetries: number;
  retriedSends: number;
  drops: number;
  lostSockets: number;
  /** Subscriptions the server ended with an error, by code. */
  errors: Record<string, number>;
  /** UNAVAILABLE endings for the gap fault's chat during it: the fault did strike. */
  gapFailures: number;
  phases: PhaseReport[];
  durationMs: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const GAP_PHASE = 'gap fill fails';

export async function runDeliveryScenario(options: DeliveryScenarioOptions): Promise<DeliveryReport> {
  const { first, second, redis, outage, chats, log = () => {} } = options;
  const started = Date.now();
  const urls = [first.url, second.url];
  const timeline: Array<{ name: string; at: number; report: PhaseReport }> = [];
  const phaseAt = (time: number) => {
    for (let i = timeline.length - 1; i >= 0; i--) if (timeline[i]!.at <= time) return timeline[i]!;
    return timeline[0]!;
  };
  const enter = (name: string) => {
    let report = timeline.find((entry) => entry.name === name)?.report;
    if (!report) report = { name, ackDelaysMs: [], deliveries: 0, delaysMs: [] };
    timeline.push({ name, at: Date.now(), report });
    log(`${((Date.now() - started) / 1000).toFixed(1)} s: ${name}`);
  };
  enter('steady');

  let gapFailures = 0;
  const subscribers: Subscriber[] = chats.flatMap((chat) =>
    chat.members.map((member) =>
      startSubscriber({
        urls,
        token: member.token,
        chatId: chat.id,
        dropEveryMs: options.dropEveryMs,
        onDelivery: (sentAt, delayMs) => {
          const { report } = phaseAt(sentAt);
          report.deliveries += 1;
          report.delaysMs.push(delayMs);
        },
        onError: (code) => {
          if (code === 'UNAVAILABLE' && chat === chats[0] && timeline.at(-1)!.name === GAP_PHASE) gapFailures += 1;
        },
      }),
    ),
  );
  const senders: Sender[] = chats.flatMap((chat) =>
    chat.members.slice(0, options.sendersPerChat).map((member, index) =>
      startSender({
        urls,
        token: member.token,
        chatId: chat.id,
        name: `${chat.id}-${index}`,
        pauseMs: options.senderPauseMs,
        onAck: (sentAt, delayMs) => phaseAt(sentAt).report.ackDelaysMs.push(delayMs),
      }),
    ),
  );
  const acknowledged = () => senders.reduce((sum, sender) => sum + sender.acks.size, 0);

  let gapMessages = 0;
  /** An event lost (its instance published nothing) while the database is out of reach for longer than the bound. */
  const gapFault = async () => {
    for (const sender of senders) sender.pause(true);
    await Promise.all(senders.map((sender) => sender.idle()));
    const [chat] = chats;
    const senderId = chat!.members[0]!.id;
    await sendWithoutEvent(first.app, senderId, chat!.id, textOf(Date.now(), `gap-${gapMessages++}`));
    const revealing = await sendWithoutEvent(first.app, senderId, chat!.id, textOf(Date.now(), `gap-${gapMessages++}`));
    await outage.begin();
    try {
      await first.app.services.events.message(chat!.id, 'CREATED', revealing);
      await sleep(options.gapTimeoutMs + 1_000);
    } finally {
      await outage.end();
      for (const sender of senders) sender.pause(false);
    }
  };

  const { rounds = 1, messages = 0 } = options.until;
  try {
    for (let round = 1; round <= rounds || acknowledged() < messages; round++) {
      await sleep(options.settleMs);
      enter('instance 2 killed');
      await second.kill();
      await second.start();
      await sleep(options.settleMs);
      enter('Redis restarted');
      await redis.kill();
      await sleep(500);
      await redis.start();
      await sleep(options.settleMs);
      enter(options.databaseFault.name);
      await options.databaseFault.run();
      await sleep(options.settleMs);
      enter(GAP_PHASE);
      await gapFault();
      await sleep(options.settleMs);
      enter('steady');
      log(`  round ${round}: ${acknowledged()} messages acknowledged`);
    }
    await Promise.all(senders.map((sender) => sender.stop()));

    // Every subscriber gets to the last position of its chat, or the wait runs out.
    const { prisma } = first.app.services;
    const positions = new Map(
      (await prisma.chat.findMany({ where: { id: { in: chats.map((chat) => chat.id) } }, select: { id: true, lastSeq: true } })).map((chat) => [chat.id, chat.lastSeq]),
    );
    const behind = () => subscribers.filter((subscriber) => subscriber.counts.received.size < positions.get(subscriber.chatId)!);
    const drainUntil = Date.now() + options.drainTimeoutMs;
    while (behind().length > 0 && Date.now() < drainUntil) await sleep(100);
    for (const subscriber of subscribers) subscriber.stop();

    const total = (count: (subscriber: Subscriber) => number) => subscribers.reduce((sum, subscriber) => sum + count(subscriber), 0);
    const expectedDeliveries = total((subscriber) => positions.get(subscriber.chatId)!);
    const delivered = total((subscriber) => subscriber.counts.received.size);
    const errors: Record<string, number> = {};
    for (const subscriber of subscribers) {
      for (const [code, n] of Object.entries(subscriber.counts.errors)) errors[code] = (errors[code] ?? 0) + n;
    }
    return {
      acknowledged: acknowledged(),
      stored: await prisma.message.count({ where: { chatId: { in: chats.map((chat) => chat.id) } } }),
      gapMessages,
      expectedDeliveries,
      delivered,
      lost: expectedDeliveries - delivered,
      duplicated: total((subscriber) => subscriber.counts.duplicates),
      outOfOrder: total((subscriber) => subscriber.counts.outOfOrder),
      completedByServer: total((subscriber) => subscriber.counts.completedByServer),
      mismatchedRetries: senders.reduce((sum, sender) => sum + sender.mismatches, 0),
      retriedSends: senders.reduce((sum, sender) => sum + sender.retries, 0),
      drops: total((subscriber) => subscriber.counts.drops),
      lostSockets: total((subscriber) => subscriber.counts.lostSockets),
      errors,
      gapFailures,
      phases: [...new Set(timeline.map((entry) => entry.report))],
      durationMs: Date.now() - started,
    };
  } finally {
    for (const subscriber of subscribers) subscriber.stop();
    for (const sender of senders) sender.abandon();
  }
}
