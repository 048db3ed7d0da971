// Finding 1 of issue #14: push endpoints as an SSRF vector. Every address from the finding is
// refused at registration, and a push to one (a row stored before the rules, or a name whose DNS
// answer changed since) never opens a connection: a local listener counts them.
import { rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { checkPushEndpoint, guardedLookup, isPublicAddress, type HostResolver } from '../src/notifications/endpoints.ts';
import { createPushSender } from '../src/notifications/web-push.ts';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, scratchDatabaseUrl, sendText, startTestApp, testConfig, type TestUser } from './support/helpers.ts';
import { localhostCertificate } from './support/localhost-certificate.ts';
import { newDeviceKeys } from './support/push-service.ts';

const REGISTER = `mutation ($input: PushSubscriptionInput!) { registerPushSubscription(input: $input) { id endpoint } }`;

/** Every address the finding names as accepted, with what it really is. */
const FINDING_ADDRESSES = [
  ['[::ffff:127.0.0.1]', 'loopback, IPv4-mapped'],
  ['[::ffff:a9fe:a9fe]', '169.254.169.254, cloud metadata'],
  ['[::ffff:10.0.0.1]', 'private, IPv4-mapped'],
  ['[::127.0.0.1]', 'loopback, IPv4-compatible'],
  ['[64:ff9b::7f00:1]', 'loopback through NAT64'],
  ['[fec0::1]', 'site-local'],
  ['[ff02::1]', 'multicast'],
  ['198.18.0.1', 'benchmarking range'],
  ['192.0.0.1', 'IETF protocol assignments'],
] as const;
/** What the old hand-written filter already caught, which must stay refused. */
const KNOWN_PRIVATE = ['127.0.0.1', '10.0.0.1', '169.254.169.254', '[::1]', '[fd00::1]', '[fe80::1]', '100.64.0.1', '0.0.0.0', '[::]', '224.0.0.1'];

/** Names the tests resolve without DNS: `loopback.test` is 127.0.0.1, `public.test` a public address never connected to. */
const testResolver: HostResolver = async (host) =>
  ({ 'loopback.test': ['127.0.0.1'], 'mixed.test': ['93.184.216.34', '127.0.0.1'], 'public.test': ['93.184.216.34'] })[host] ?? [];

/** A TCP listener on 127.0.0.1 that counts connections and drops them: what a push must never reach. */
async function countingListener() {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('the address rules', () => {
  it.each(FINDING_ADDRESSES)('%s (%s) is not public', (host) => {
    expect(isPublicAddress(host.replace(/^\[|\]$/g, ''))).toBe(false);
  });

  it('allows only unicast addresses of either family', () => {
    expect(isPublicAddress('93.184.216.34')).toBe(true);
    expect(isPublicAddress('2606:4700::6810:85e5')).toBe(true);
    expect(isPublicAddress('::ffff:93.184.216.34')).toBe(true);
    for (const host of KNOWN_PRIVATE) expect(isPublicAddress(host.replace(/^\[|\]$/g, '')), host).toBe(false);
    expect(isPublicAddress('not an address')).toBe(false);
  });

  it('refuses at registration every address of the finding, and names resolving to one', async () => {
    const policy = { allowPrivate: false, resolve: testResolver };
    for (const host of [...FINDING_ADDRESSES.map(([h]) => h), ...KNOWN_PRIVATE, 'loopback.test', 'mixed.test', 'nowhere.test']) {
      await expect(checkPushEndpoint(`https://${host}:9555/push`, policy), host).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'input.endpoint' } });
    }
    await expect(checkPushEndpoint('https://public.test/push', policy)).resolves.toBeInstanceOf(URL);
    // PUSH_ALLOW_PRIVATE_ENDPOINTS is the only way around it.
    await expect(checkPushEndpoint('https://[::ffff:127.0.0.1]:9555/push', { allowPrivate: true })).resolves.toBeInstanceOf(URL);
  });

  it('hands a socket only the addresses that pass', async () => {
    const lookup = guardedLookup({ allowPrivate: false, resolve: testResolver });
    const answer = (host: string, all: boolean) =>
      new Promise<{ error: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
        lookup(host, { all }, (error, address) => resolve({ error, address })),
      );
    expect(await answer('mixed.test', true)).toEqual({ error: null, address: [{ address: '93.184.216.34', family: 4 }] });
    expect(await answer('mixed.test', false)).toEqual({ error: null, address: '93.184.216.34' });
    const refused = await answer('loopback.test', true);
    expect(refused.error?.code).toBe('EPUSHADDRESS');
  });
});

describe('the sender', () => {
  it('opens no socket at all for an endpoint on any address of the finding', async () => {
    // Every socket the sender would open goes through Socket#connect: here each is counted and
    // stopped before it leaves, so even a regression sends nothing anywhere.
    const attempts: unknown[] = [];
    const connect = vi.spyOn(Socket.prototype, 'connect').mockImplementation(function (this: Socket, ...args: unknown[]) {
      attempts.push(args[0]);
      return this.destroy(new Error('stopped by the test'));
    });
    try {
      const send = createPushSender({ vapid: testConfig().push.vapid, endpoints: { allowPrivate: false, resolve: testResolver } });
      const { p256dh, auth } = newDeviceKeys();
      for (const host of [...FINDING_ADDRESSES.map(([h]) => h), ...KNOWN_PRIVATE]) {
        const outcome = await send({ endpoint: `https://${host}:9555/push`, p256dh, auth }, '{}', { topic: 't', ttlSeconds: 60, urgency: 'normal' });
        expect(outcome.kind, host).toBe('refused');
      }
      expect(attempts).toEqual([]);
    } finally {
      connect.mockRestore();
    }
  });
});

describe('a push to a private address', () => {
  // Apps relay the whole outbox table: this file keeps a database of its own (as push.test.ts does).
  const database = scratchDatabaseUrl('kocmoc_ssrf');
  let listener: Awaited<ReturnType<typeof countingListener>>;
  beforeAll(async () => {
    await ensureDatabase(database.url);
    await applyMigrations({ databaseUrl: database.url });
    listener = await countingListener();
  });
  afterAll(async () => {
    await listener?.close();
    await database.drop();
  });

  const startApp = (env: Record<string, string> = {}) =>
    startTestApp({ DATABASE_URL: database.url, PUSH_COLLAPSE_WINDOW: '0s', ...env }, { notifications: { resolveHost: testResolver } });

  /** Stores a subscription the way an older server (or a DNS answer that changed since) let it in. */
  async function storeSubscription(app: App, user: TestUser, endpoint: string) {
    const session = await app.services.prisma.session.findFirstOrThrow({ where: { userId: user.id }, orderBy: { createdAt: 'desc' } });
    const { p256dh, auth } = newDeviceKeys();
    return app.services.prisma.pushSubscription.create({ data: { endpoint, userId: user.id, sessionId: session.id, p256dh, auth } });
  }

  it('is refused at registration, and a stored one is never connected to', async () => {
    const app = await startApp();
    try {
      const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
      // The attack as described: accepted, stored as [::ffff:7f00:1], and pushed to.
      const keys = newDeviceKeys();
      const attack = await gql(
        app,
        REGISTER,
        { input: { endpoint: `https://[::ffff:127.0.0.1]:${listener.port}/steal`, keys: { p256dh: keys.p256dh, auth: keys.auth } } },
        { token: alice.accessToken },
      );
      expect(codeOf(attack)).toBe('BAD_USER_INPUT');
      expect(attack.errors?.[0]?.extensions?.field).toBe('input.endpoint');
      const viaName = await gql(
        app,
        REGISTER,
        { input: { endpoint: `https://loopback.test:${listener.port}/steal`, keys: { p256dh: keys.p256dh, auth: keys.auth } } },
        { token: alice.accessToken },
      );
      expect(codeOf(viaName)).toBe('BAD_USER_INPUT');

      const endpoints = [
        `https://[::ffff:7f00:1]:${listener.port}/a`,
        `https://127.0.0.1:${listener.port}/b`,
        `https://[::127.0.0.1]:${listener.port}/c`,
        `https://loopback.test:${listener.port}/d`, // registered while it resolved publicly; now it is 127.0.0.1
        `https://[::1]:${listener.port}/e`,
      ];
      const stored = await Promise.all(endpoints.map((endpoint) => storeSubscription(app, alice, endpoint)));
      const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
      await sendText(app, bob, chatId, 'where does this go?');
      await app.notifications.whenIdle();
      expect(listener.connections).toBe(0);
      // Refused deliveries delete the subscription, as for one the push service says is gone.
      expect(await app.services.prisma.pushSubscription.count({ where: { id: { in: stored.map((s) => s.id) } } })).toBe(0);
    } finally {
      await app.stop();
    }
  });

  it('does reach the listener with PUSH_ALLOW_PRIVATE_ENDPOINTS=true (so the count above means something)', async () => {
    const app = await startApp({ PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true' });
    try {
      const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
      await storeSubscription(app, alice, `https://loopback.test:${listener.port}/allowed`);
      const chatId = await createChat(app, bob, { kind: 'DIRECT', memberIds: [alice.id] });
      const before = listener.connections;
      await sendText(app, bob, chatId, 'development setups may');
      for (let i = 0; i < 100 && listener.connections === before; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(listener.connections).toBeGreaterThan(before);
    } finally {
      await app.stop();
    }
  });
});

describe('redirects', () => {
  it('are not followed', async () => {
    const listener = await countingListener();
    const { dir, key, cert } = localhostCertificate('kocmoc-redirect-');
    const pushService = createHttpsServer({ key, cert }, (req, res) => {
      req.resume();
      res.writeHead(307, { location: `https://127.0.0.1:${listener.port}/elsewhere` }).end();
    });
    await new Promise<void>((resolve) => pushService.listen(0, '127.0.0.1', resolve));
    try {
      const send = createPushSender({ vapid: testConfig().push.vapid, endpoints: { allowPrivate: true }, tls: { ca: cert } });
      const { p256dh, auth } = newDeviceKeys();
      const endpoint = `https://127.0.0.1:${(pushService.address() as AddressInfo).port}/device`;
      const outcome = await send({ endpoint, p256dh, auth }, '{}', { topic: 't', ttlSeconds: 60, urgency: 'normal' });
      expect(outcome).toMatchObject({ kind: 'rejected', statusCode: 307 });
      expect(listener.connections).toBe(0);
    } finally {
      await new Promise<void>((resolve) => pushService.close(() => resolve()));
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
