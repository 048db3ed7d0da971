// Which address a client is counted under, over real sockets from several loopback addresses
// (127.0.0.2, 127.0.0.3, ...: all of 127/8 is this machine), and the graphql-ws caps per address.
import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { register } from '../src/auth/accounts.ts';
import { clientAddressOf } from '../src/limits/client-address.ts';
import { parseRate } from '../src/limits/settings.ts';
import type { App } from '../src/server/app.ts';
import { loadConfig } from '../src/env.ts';
import { limitStores, startLimitApps, startTestApp, uniqueName } from './support/helpers.ts';
import { LOGIN } from './support/operations.ts';

const PASSWORD = 'correct horse battery staple';

describe('client addresses', () => {
  it('come from the socket unless TRUST_PROXY names the hops', () => {
    expect(clientAddressOf('203.0.113.9', '198.51.100.1', 0)).toBe('203.0.113.9');
    expect(clientAddressOf('::ffff:203.0.113.9', undefined, 0)).toBe('203.0.113.9');
    // One proxy: the entry it appended; what the client wrote left of it proves nothing.
    expect(clientAddressOf('10.0.0.2', 'forged, 198.51.100.1', 1)).toBe('198.51.100.1');
    expect(clientAddressOf('10.0.0.2', '198.51.100.1, 10.0.0.7', 2)).toBe('198.51.100.1');
    // Fewer entries than hops: the leftmost.
    expect(clientAddressOf('10.0.0.2', undefined, 1)).toBe('10.0.0.2');
    expect(clientAddressOf(undefined, undefined, 0)).toBe('local');
  });

  it('count an IPv6 client by its /64', () => {
    expect(clientAddressOf('2001:db8:1:2:aaaa::1', undefined, 0)).toBe('2001:db8:1:2::/64');
    expect(clientAddressOf('2001:db8:1:2:bbbb::9', undefined, 0)).toBe('2001:db8:1:2::/64');
    expect(clientAddressOf('2001:db8::1', undefined, 0)).toBe('2001:db8:0:0::/64');
  });
});

describe('rate settings', () => {
  it('read POINTS/DURATION with an optional burst, and name a bad one', () => {
    expect(parseRate('10/15m')).toEqual({ points: 10, durationMs: 900_000, burst: undefined });
    expect(parseRate('5/1s, burst 30')).toEqual({ points: 5, durationMs: 1_000, burst: 30 });
    expect(parseRate('5/1s, burst 2')).toBeUndefined();
    expect(parseRate('ten a minute')).toBeUndefined();
    expect(() => loadConfig({ DATA_DIR: '/tmp/kocmoc-env-rates', RATE_LIMIT_SEARCH: 'often' })).toThrow(/RATE_LIMIT_SEARCH: expected a rate like 10\/15m/);
    expect(() => loadConfig({ DATA_DIR: '/tmp/kocmoc-env-rates', RATE_LIMITS: 'sometimes' })).toThrow(/RATE_LIMITS/);
  });
});

/** POSTs a GraphQL operation from `localAddress` to the app's real port. */
function postFrom(localAddress: string, port: number, body: unknown, headers: Record<string, string> = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    const outgoing = request(
      { host: '127.0.0.1', port, path: '/graphql', method: 'POST', localAddress, headers: { 'content-type': 'application/json', ...headers } },
      (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk));
        response.on('end', () => resolve(JSON.parse(text)));
      },
    );
    outgoing.on('error', reject);
    outgoing.end(JSON.stringify(body));
  });
}

describe('per-address limits over real sockets (TRUST_PROXY=0)', () => {
  let app: App;
  let port: number;
  beforeAll(async () => {
    app = await startTestApp({ RATE_LIMITS: 'on', RATE_LIMIT_LOGIN_FAILURES: '3/15m' }, { rateLimitKeyPrefix: `kocmoc-test:${randomUUID()}:` });
    ({ port } = await app.start());
  });
  afterAll(() => app.stop());

  it("lock the guessing address out of an account, ignoring a forged X-Forwarded-For, not the owner's", async () => {
    const username = uniqueName();
    await register(app.services, { email: `${username}@example.com`, username, password: PASSWORD }, { userAgent: null, address: 'setup' });
    const attempt = (from: string, password: string, headers?: Record<string, string>) => postFrom(from, port, { query: LOGIN, variables: { input: { login: username, password } } }, headers);
    for (let i = 0; i < 3; i += 1) expect((await attempt('127.0.0.2', 'wrong')).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect((await attempt('127.0.0.2', PASSWORD, { 'x-forwarded-for': '198.51.100.77' })).errors[0].extensions.code).toBe('RATE_LIMITED');
    const owner = await attempt('127.0.0.3', PASSWORD);
    expect(owner.errors).toBeUndefined();
    expect(owner.data.login.user.username).toBe(username);
  });
});

/** A raw graphql-ws socket from `localAddress` that never authenticates; resolves once open, or with the refusal's status. */
function rawSocket(url: string, localAddress: string) {
  const socket = new WebSocket(url, 'graphql-transport-ws', { localAddress });
  const outcome = new Promise<{ open: true } | { open: false; status: number; retryAfter: string | undefined }>((resolve) => {
    socket.once('open', () => resolve({ open: true }));
    socket.once('unexpected-response', (_request, response) => resolve({ open: false, status: response.statusCode ?? 0, retryAfter: response.headers['retry-after'] }));
    socket.once('error', () => resolve({ open: false, status: 0, retryAfter: undefined }));
  });
  return { socket, outcome };
}

describe.each(limitStores())('graphql-ws per address ($store)', ({ env, instances }) => {
  let apps: App[];
  let urls: string[];
  const open: WebSocket[] = [];
  beforeAll(async () => {
    ({ apps, urls } = await startLimitApps({ RATE_LIMIT_WS_CONNECT: '30/1m', ...env }, instances));
  });
  afterAll(async () => {
    for (const socket of open.splice(0)) socket.terminate();
    await Promise.all(apps.map((app) => app.stop()));
  });
  const connectFrom = (address: string, instance = 0) => {
    const raw = rawSocket(urls[instance % urls.length]!, address);
    open.push(raw.socket);
    return raw.outcome;
  };

  it('refuses the 21st unauthenticated socket of an address with 429, and takes one again once one authenticates', async () => {
    const address = instances === 1 ? '127.0.0.4' : '127.0.0.5';
    const twenty = await Promise.all(Array.from({ length: 20 }, () => connectFrom(address)));
    expect(twenty.every((outcome) => outcome.open)).toBe(true);
    expect(await connectFrom(address)).toMatchObject({ open: false, status: 429 });
    // Another address is not affected.
    expect(await connectFrom('127.0.0.6')).toEqual({ open: true });
    // One of the twenty authenticates: it no longer counts, so one more may connect.
    const username = uniqueName();
    const session = await register(apps[0]!.services, { email: `${username}@example.com`, username, password: PASSWORD }, { userAgent: null, address: 'setup' });
    const first = open[0]!;
    const acknowledged = new Promise((resolve) => first.once('message', (data) => resolve(JSON.parse(String(data)).type)));
    first.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${session.accessToken}` } }));
    expect(await acknowledged).toBe('connection_ack');
    expect(await connectFrom(address)).toEqual({ open: true });
  });

  it('refuses connection attempts over RATE_LIMIT_WS_CONNECT a minute, with Retry-After, across instances', async () => {
    const address = instances === 1 ? '127.0.0.7' : '127.0.0.8';
    const outcomes = [];
    // One at a time, closing each, so only the attempts add up.
    for (let i = 0; i < 31; i += 1) {
      const outcome = await connectFrom(address, i);
      outcomes.push(outcome);
      open.at(-1)!.terminate();
    }
    expect(outcomes.slice(0, 30).every((outcome) => outcome.open)).toBe(true);
    const refused = outcomes[30]!;
    expect(refused).toMatchObject({ open: false, status: 429 });
    expect(Number((refused as { retryAfter?: string }).retryAfter)).toBeGreaterThan(0);
  });
});
