// One event to many local subscribers takes turns with HTTP requests (src/server/delivery-turns.ts):
// while an event is being written to 2,500 sockets of this instance, an HTTP query that came in
// once the first of them got it is answered after a few turns' deliveries, not after the last. Unbounded, the
// writes of every subscriber whose shared result was ready ran in one drain of the microtask queue,
// and the query waited behind them.
import { createClient, type Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createBenchUsers, createGroupChat, type BenchUser } from '../bench/ws-fixtures.ts';
import type { App } from '../src/server/app.ts';
import { DELIVERIES_PER_TURN } from '../src/server/delivery-turns.ts';
import { startSocketTestApp } from './support/helpers.ts';

const MEMBERS = 2_500;
const SUBSCRIPTION = `subscription ($chatId: ID) { messageEvents(chatId: $chatId) { type seq message { id text sender { id displayName } } } }`;
const SEND = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }`;

let app: App;
let url: string;
const clients: Client[] = [];

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp({ PUSH_ENABLED: 'false', RATE_LIMITS: 'off' }));
});
afterAll(async () => {
  await Promise.all(clients.map((client) => client.dispose()));
  await app?.stop();
});

/** A real HTTP request to the app's port. */
async function post(query: string, variables: Record<string, unknown>, token?: string) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  expect(body.errors).toBeUndefined();
  return body.data;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('fan-out to many local sockets', () => {
  it('answers an HTTP query that arrives while one event is written to 1,200 sockets after a few turns of deliveries, not after them all', async () => {
    const users = await createBenchUsers(app, MEMBERS, 'turns');
    const chatId = await createGroupChat(app, users.map((user) => user.userId), 'Turns');
    /** Per message text: how many subscribers got it, and a hook on the first. */
    const received = new Map<string, number>();
    let onFirst: ((text: string) => void) | undefined;
    const subscribeAll = (user: BenchUser) =>
      new Promise<void>((resolve, reject) => {
        const client = createClient({
          url: url.replace(/^http/, 'ws'),
          webSocketImpl: WebSocket,
          lazy: false,
          retryAttempts: 0,
          connectionParams: { authorization: `Bearer ${user.accessToken}` },
          on: { connected: () => resolve() },
          onNonLazyError: reject,
        });
        clients.push(client);
        client.subscribe(
          { query: SUBSCRIPTION, variables: { chatId } },
          {
            next: (value) => {
              const text = (value.data as any)?.messageEvents?.message?.text as string;
              const count = (received.get(text) ?? 0) + 1;
              received.set(text, count);
              if (count === 1) onFirst?.(text);
            },
            error: reject,
            complete: () => {},
          },
        );
      });
    for (let i = 0; i < MEMBERS; i += 200) await Promise.all(users.slice(i, i + 200).map(subscribeAll));
    const sender = users[0]!;
    const send = (text: string) => post(SEND, { input: { chatId, kind: 'TEXT', text } }, sender.accessToken);

    // Subscriptions go live asynchronously: probe until one message reaches everyone.
    for (let probe = 0; ; probe++) {
      await send(`probe ${probe}`);
      for (let i = 0; i < 50 && (received.get(`probe ${probe}`) ?? 0) < MEMBERS; i++) await sleep(100);
      if (received.get(`probe ${probe}`) === MEMBERS) break;
      expect(probe).toBeLessThan(10);
    }

    // Each measured message: once the first subscriber has it, a query over HTTP; when its answer
    // comes, how many subscribers had the message.
    const atAnswer: number[] = [];
    for (let round = 0; round < 3; round++) {
      const text = `measured ${round}`;
      const answered = new Promise<number>((resolve, reject) => {
        onFirst = (first) => {
          if (first !== text) return;
          post('{ __typename }', {}).then(() => resolve(received.get(text) ?? 0), reject);
        };
      });
      await send(text);
      atAnswer.push(await answered);
      for (let i = 0; i < 100 && (received.get(text) ?? 0) < MEMBERS; i++) await sleep(50);
      expect(received.get(text)).toBe(MEMBERS);
    }
    // Answered within a few turns' deliveries (its accept, read and answer each take a turn), long
    // before the last socket; unbounded, a whole chunk of the chat feed's hand-out (250) or more
    // was written in one run, several chunks before the answer.
    console.log('subscribers with the message when the query was answered:', atAnswer);
    for (const count of atAnswer) expect(count).toBeLessThan(4 * DELIVERIES_PER_TURN);
  });
});
