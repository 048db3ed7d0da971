// Clients that use the API the way issue #22's operator did, for the fault test and the soak bench:
// senders that post with a clientMessageId and retry on another instance until acknowledged, and
// subscribers that follow one chat with messageEvents(chatId, sinceSeq), drop their socket at
// random and resume with sinceSeq on a random instance after every drop, error or end, counting
// by seq what they receive. No vitest here: the bench uses them too.
import WebSocket from 'ws';
import { SEND_MESSAGE_RECEIPT } from './operations.ts';

const SUBSCRIPTION = `subscription ($chatId: ID, $sinceSeq: Int) { messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) { type seq message { text } } }`;

/** setTimeout's longest delay: a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const pick = <T>(values: readonly T[]) => values[Math.floor(Math.random() * values.length)]!;

/** A message's text starts with the time its first attempt left the sender: deliveries are timed by it. */
export const textOf = (sentAt: number, clientMessageId: string) => `${sentAt} ${clientMessageId}`;
export const sentAtOf = (text: string) => Number(text.slice(0, text.indexOf(' ')));

export interface SenderOptions {
  /** Every instance's GraphQL endpoint; a retry goes to the next one. */
  urls: readonly string[];
  token: string;
  chatId: string;
  /** Prefix of its clientMessageIds, unique per sender. */
  name: string;
  /** Pause after each acknowledged message. */
  pauseMs: number;
  /** Called once per message when it is acknowledged, with the time from its first attempt (retries included). */
  onAck?: (sentAt: number, delayMs: number) => void;
}

export interface Sender {
  /** Acknowledged messages: clientMessageId → the id and seq the server answered (the first answer). */
  readonly acks: Map<string, { id: string; seq: number }>;
  /** Attempts that failed (an error answer or no answer) and were retried. */
  readonly retries: number;
  /** Retries answered with a message other than the first answer for that clientMessageId: should stay 0. */
  readonly mismatches: number;
  /** Starts no new message while it returns true. */
  pause(paused: boolean): void;
  /** Resolves once no message is in flight (paused or stopped). */
  idle(): Promise<void>;
  /** Sends no new message; resolves once the one in flight is acknowledged. */
  stop(): Promise<void>;
  /** Stops at once, retries included (when a run failed). */
  abandon(): void;
}

export function startSender({ urls, token, chatId, name, pauseMs, onAck }: SenderOptions): Sender {
  const acks = new Map<string, { id: string; seq: number }>();
  let retries = 0;
  let mismatches = 0;
  let paused = false;
  let stopped = false;
  let abandoned = false;
  let inFlight: Promise<void> = Promise.resolve();
  /** The instance to try first: the one that answered last (as a client sticks to a working endpoint). */
  let preferred = Math.floor(Math.random() * urls.length);

  /** One message, retried on the next instance until an instance acknowledges it. */
  const send = async (clientMessageId: string) => {
    const sentAt = Date.now();
    const input = { chatId, kind: 'TEXT', text: textOf(sentAt, clientMessageId), clientMessageId };
    for (let attempt = preferred; ; attempt++) {
      preferred = attempt % urls.length;
      try {
        const response = await fetch(urls[preferred]!, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: SEND_MESSAGE_RECEIPT, variables: { input } }),
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await response.json()) as { data?: { sendMessage?: { id: string; seq: number } } };
        const message = body.data?.sendMessage;
        if (message) {
          const first = acks.get(clientMessageId);
          if (first && first.id !== message.id) mismatches += 1;
          if (!first) acks.set(clientMessageId, { id: message.id, seq: message.seq });
          onAck?.(sentAt, Date.now() - sentAt);
          return;
        }
      } catch {
        // No answer: the instance died, or the request timed out. Retry elsewhere.
      }
      retries += 1;
      if (abandoned) return;
      await sleep(100 + Math.random() * 200);
    }
  };

  const loop = async () => {
    for (let index = 0; !stopped; index++) {
      while (paused && !stopped) await sleep(20);
      if (stopped) return;
      inFlight = send(`${name}-${index}`);
      await inFlight;
      await sleep(pauseMs);
    }
  };
  const running = loop();

  return {
    acks,
    get retries() {
      return retries;
    },
    get mismatches() {
      return mismatches;
    },
    pause(value) {
      paused = value;
    },
    idle: () => inFlight,
    async stop() {
      stopped = true;
      await running;
    },
    abandon() {
      stopped = abandoned = true;
    },
  };
}

export interface SubscriberOptions {
  /** Every instance's GraphQL endpoint; each (re)subscription picks one at random. */
  urls: readonly string[];
  token: string;
  chatId: string;
  /** Mean time between the subscriber's own random socket drops. */
  dropEveryMs: number;
  /** Called for each delivery in order (not for repeats), with the time from its send (by its text). */
  onDelivery?: (sentAt: number, delayMs: number) => void;
  /** Called for each subscription the server ended with an error, with its code. */
  onError?: (code: string) => void;
}

/** What one subscriber saw, counted by seq. */
export interface SubscriberCounts {
  /** Positions received at least once. */
  received: Set<number>;
  /** Deliveries of a position at or below the last one received. */
  duplicates: number;
  /** Deliveries that skipped positions (received after a gap). */
  outOfOrder: number;
  /** Subscriptions the server ended with a `complete`: "no more events". Must stay 0. */
  completedByServer: number;
  /** Subscriptions the server ended with an `error`, by `extensions.code`. */
  errors: Record<string, number>;
  /** Sockets the subscriber dropped itself, and sockets that closed under it (killed instance, refused connection). */
  drops: number;
  lostSockets: number;
}

export interface Subscriber {
  readonly chatId: string;
  readonly counts: SubscriberCounts;
  /** Highest position received in order: the `sinceSeq` of its next resubscription. */
  readonly lastSeq: number;
  /** Stops for good (closes its socket). */
  stop(): void;
}

/** A resuming subscriber over graphql-ws's own protocol (graphql-transport-ws), so every ending is seen as it is. */
export function startSubscriber({ urls, token, chatId, dropEveryMs, onDelivery, onError }: SubscriberOptions): Subscriber {
  const counts: SubscriberCounts = { received: new Set(), duplicates: 0, outOfOrder: 0, completedByServer: 0, errors: {}, drops: 0, lostSockets: 0 };
  let lastSeq = 0;
  let stopped = false;
  let socket: WebSocket | undefined;
  let dropTimer: NodeJS.Timeout | undefined;
  const count = (code: string) => void (counts.errors[code] = (counts.errors[code] ?? 0) + 1);

  /** Ends the current socket (it is not to report its close) and subscribes again after `delayMs`. */
  const resubscribe = (delayMs: number) => {
    const current = socket;
    socket = undefined;
    clearTimeout(dropTimer);
    current?.removeAllListeners('close');
    current?.terminate();
    if (!stopped) setTimeout(connect, delayMs);
  };

  const onMessage = (data: WebSocket.RawData) => {
    const message = JSON.parse(String(data)) as { type: string; payload?: any };
    if (message.type === 'connection_ack') {
      socket?.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUBSCRIPTION, variables: { chatId, sinceSeq: lastSeq } } }));
    } else if (message.type === 'ping') {
      socket?.send(JSON.stringify({ type: 'pong' }));
    } else if (message.type === 'next') {
      const event = message.payload?.data?.messageEvents as { type: string; seq: number; message: { text: string } } | undefined;
      // An event without its data is one the client cannot place: it counts, and shows as a gap next.
      if (!event) return count(`next: ${message.payload?.errors?.[0]?.extensions?.code ?? 'no data'}`);
      if (event.type !== 'CREATED') return;
      if (event.seq <= lastSeq) counts.duplicates += 1;
      else {
        if (event.seq > lastSeq + 1) counts.outOfOrder += 1;
        lastSeq = event.seq;
        counts.received.add(event.seq);
        const sentAt = sentAtOf(event.message.text);
        onDelivery?.(sentAt, Date.now() - sentAt);
      }
    } else if (message.type === 'error') {
      const code = (message.payload?.[0]?.extensions?.code as string | undefined) ?? 'no code';
      count(code);
      onError?.(code);
      const retryAfter = Number(message.payload?.[0]?.extensions?.retryAfterSeconds ?? 0);
      resubscribe(retryAfter > 0 ? retryAfter * 1_000 : 200);
    } else if (message.type === 'complete') {
      counts.completedByServer += 1;
      resubscribe(200);
    }
  };

  const connect = () => {
    if (stopped) return;
    const opened = new WebSocket(pick(urls).replace(/^http/, 'ws'), 'graphql-transport-ws');
    socket = opened;
    opened.on('open', () => opened.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    opened.on('message', onMessage);
    opened.on('error', () => {}); // the close that follows says it
    opened.on('close', () => {
      if (socket !== opened) return;
      counts.lostSockets += 1;
      resubscribe(100 + Math.random() * 200);
    });
    // Drops at random times (exponentially distributed), as a flaky mobile network would.
    dropTimer = setTimeout(
      () => {
        if (socket !== opened) return;
        counts.drops += 1;
        resubscribe(0);
      },
      Math.min(-Math.log(1 - Math.random()) * dropEveryMs, MAX_TIMER_MS),
    );
  };
  connect();

  return {
    chatId,
    counts,
    get lastSeq() {
      return lastSeq;
    },
    stop() {
      stopped = true;
      resubscribe(0);
    },
  };
}
