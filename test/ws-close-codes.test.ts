// Every close code the graphql-ws endpoint sends, walked: each row of README's "WebSocket close
// codes" table is produced here through a real socket on a real port (each case signs in a user of
// its own: the app allows only MAX_CONNECTIONS_PER_USER connections per user; and registers it before
// opening a socket, which otherwise has only CONNECTION_INIT_WAIT_MS to send connection_init). A code added to the table
// without a case here fails, and so does a case whose code the table does not list.
import { readFileSync } from 'node:fs';
import { GRAPHQL_TRANSPORT_WS_PROTOCOL, MessageType } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { App } from '../src/server/app.ts';
import { gql, registerUser, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { LOGOUT } from './support/operations.ts';

const CONNECTION_INIT_WAIT_MS = 300;
const MAX_PAYLOAD_BYTES = 4096;
const MAX_CONNECTIONS_PER_USER = 2;

/** The close codes of README's table (inside "Errors"). */
function readmeCloseCodes(): number[] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('### Errors'));
  const table = section.slice(section.indexOf('WebSocket close codes')).split('\n\n')[1]!;
  return [...table.matchAll(/^\| `(\d{4})` \|/gm)].map((row) => Number(row[1]));
}

let app: App;
let url: string;
let user: TestUser;

interface RawSocket {
  socket: WebSocket;
  /** The close code the server sent. */
  closed: Promise<number>;
  send(message: unknown): void;
  /** Sends connection_init with the token and waits for connection_ack. */
  init(token: string): Promise<void>;
}

/** A WebSocket speaking graphql-transport-ws by hand, so a test can send what no client library would. */
async function open(protocol: string | null = GRAPHQL_TRANSPORT_WS_PROTOCOL, to = url): Promise<RawSocket> {
  const address = to.replace(/^http/, 'ws');
  const socket = protocol === null ? new WebSocket(address) : new WebSocket(address, protocol);
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const send = (message: unknown) => socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  const init = async (token: string) => {
    const acked = new Promise<void>((resolve, reject) => {
      socket.on('message', (data) => JSON.parse(String(data)).type === MessageType.ConnectionAck && resolve());
      void closed.then((code) => reject(new Error(`closed with ${code} before connection_ack`)));
    });
    send({ type: MessageType.ConnectionInit, payload: { authorization: `Bearer ${token}` } });
    await acked;
  };
  return { socket, closed, send, init };
}

const subscribe = (id: string) => ({ type: MessageType.Subscribe, id, payload: { query: 'subscription { chatEvents { type } }' } });

const producers: Record<number, () => Promise<number>> = {
  4400: async () => {
    const raw = await open();
    raw.send('this is not JSON');
    return raw.closed;
  },
  4401: async () => {
    // A token that is no token; then a subscribe before connection_init; then a session that ends.
    const badToken = await open();
    badToken.send({ type: MessageType.ConnectionInit, payload: { authorization: 'Bearer not.a.token' } });
    expect(await badToken.closed).toBe(4401);
    const early = await open();
    early.send(subscribe('1'));
    expect(await early.closed).toBe(4401);
    const leaver = await registerUser(app);
    const raw = await open();
    await raw.init(leaver.accessToken);
    await gql(app, LOGOUT, {}, { token: leaver.accessToken });
    return raw.closed;
  },
  // No subprotocol at all (a client offering an unknown one aborts the handshake itself).
  4406: async () => (await open(null)).closed,
  4408: async () => {
    const raw = await open();
    const started = Date.now();
    const code = await raw.closed;
    expect(Date.now() - started).toBeGreaterThanOrEqual(CONNECTION_INIT_WAIT_MS - 50);
    return code;
  },
  4409: async () => {
    const { accessToken } = await registerUser(app);
    const raw = await open();
    await raw.init(accessToken);
    raw.send(subscribe('same'));
    raw.send(subscribe('same'));
    return raw.closed;
  },
  4429: async () => {
    // A second connection_init; then one connection more than a user may hold.
    const { accessToken } = await registerUser(app);
    const twice = await open();
    await twice.init(accessToken);
    twice.send({ type: MessageType.ConnectionInit, payload: { authorization: `Bearer ${accessToken}` } });
    expect(await twice.closed).toBe(4429);
    const busy = await registerUser(app);
    const held: RawSocket[] = [];
    for (let i = 0; i < MAX_CONNECTIONS_PER_USER; i++) {
      held.push(await open());
      await held.at(-1)!.init(busy.accessToken);
    }
    const oneTooMany = await open();
    oneTooMany.send({ type: MessageType.ConnectionInit, payload: { authorization: `Bearer ${busy.accessToken}` } });
    const code = await oneTooMany.closed;
    for (const raw of held) raw.socket.close();
    return code;
  },
  1001: async () => {
    const other = await startSocketTestApp({}, { webSocket: { connectionInitWaitTimeoutMs: 10_000 } });
    const { accessToken } = await registerUser(other.app);
    const raw = await open(GRAPHQL_TRANSPORT_WS_PROTOCOL, other.url);
    await raw.init(accessToken);
    await other.app.stop();
    return raw.closed;
  },
  1009: async () => {
    const { accessToken } = await registerUser(app);
    const raw = await open();
    await raw.init(accessToken);
    raw.send({ ...subscribe('big'), payload: { query: `{ __typename } # ${'x'.repeat(MAX_PAYLOAD_BYTES)}` } });
    return raw.closed;
  },
  1013: async () => {
    // Presence (Redis) failing while the connection is accepted, as in an outage.
    const { presence } = app.services;
    const connect = presence.connect;
    presence.connect = () => Promise.reject(new Error('presence store unreachable'));
    try {
      const raw = await open();
      raw.send({ type: MessageType.ConnectionInit, payload: { authorization: `Bearer ${user.accessToken}` } });
      return await raw.closed;
    } finally {
      presence.connect = connect;
    }
  },
};

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp(
    {},
    {
      webSocket: { connectionInitWaitTimeoutMs: CONNECTION_INIT_WAIT_MS, maxPayloadBytes: MAX_PAYLOAD_BYTES },
      presence: { maxConnectionsPerUser: MAX_CONNECTIONS_PER_USER },
    },
  ));
  user = await registerUser(app);
});
afterAll(async () => {
  await app?.stop();
});

describe('graphql-ws close codes in README', () => {
  it('lists every code this test produces, and no other', () => {
    expect(readmeCloseCodes().sort()).toEqual(Object.keys(producers).map(Number).sort());
  });

  it.each(readmeCloseCodes())('%i: produced', async (code) => {
    expect(await producers[code]!()).toBe(code);
  });
});
