// Rate limits with RATE_LIMITS on: in one instance's memory, and through Redis across two instances
// (every other request goes to the other one, so a limit holds only if they share it). The client
// address comes from X-Forwarded-For here (TRUST_PROXY=1); rate-limit-addresses.test.ts uses real sockets.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../src/auth/accounts.ts';
import { createChat } from '../src/chats/chats.ts';
import type { App } from '../src/server/app.ts';
import { capturedLogs, codeOf, gql, limitStores, startLimitApps, startTestApp, uniqueName, type GraphQLResponse, type TestUser } from './support/helpers.ts';
import { ADD_CONTACT, CREATE_CHAT, LOGIN, REFRESH_TOKEN, SEND_MESSAGE_RECEIPT, START_TYPING } from './support/operations.ts';
import { openConnections, subscribe } from './support/ws-helpers.ts';
import { addDevice } from './support/devices.ts';

const PASSWORD = 'correct horse battery staple';
const sockets = openConnections();

/** Settings small enough to reach in a test; the rest keep their defaults (sendMessage's burst of 30 among them). */
const LIMITS = {
  RATE_LIMITS: 'on',
  TRUST_PROXY: '1',
  LOGIN_LOCKOUT: '3s',
  RATE_LIMIT_LOGIN_ACCOUNT_FAILURES: '25/1h',
  RATE_LIMIT_AUTH_ATTEMPTS: '25/1m',
  RATE_LIMIT_REGISTER: '3/1h',
  RATE_LIMIT_REFRESH: '2/1h',
  RATE_LIMIT_SEARCH: '2/1h',
  RATE_LIMIT_TYPING: '2/1h',
  RATE_LIMIT_ADD_CONTACT: '2/1h',
  RATE_LIMIT_CREATE_CHAT: '2/1h',
  RATE_LIMIT_UPLOADS: '3/1h',
  RATE_LIMIT_UPLOAD_BYTES: '100000/1h',
};

/**
 * A client address no other test of this file uses (the benchmarking range, 198.18.0.0/15): handed
 * out in turn, because random ones collided now and then, and a shared address shares its limits.
 */
let addressesHandedOut = 0;
const address = () => {
  const n = (addressesHandedOut += 1);
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
};
const from = (ip: string) => ({ 'x-forwarded-for': ip });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterAll(() => sockets.closeAll());

describe.each(limitStores())('rate limits ($store)', ({ env, instances }) => {
  let apps: App[];
  let bases: string[];
  let uploadDir: string;
  let turn = 0;
  /** The next instance: in Redis mode, requests alternate between the two. */
  const next = () => apps[turn++ % apps.length]!;

  beforeAll(async () => {
    uploadDir = mkdtempSync(join(tmpdir(), 'kocmoc-rate-limits-'));
    ({ apps, bases } = await startLimitApps({ ...LIMITS, UPLOAD_DIR: uploadDir, ...env }, instances));
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.stop()));
    rmSync(uploadDir, { recursive: true, force: true });
  });

  /** A user registered from an address of its own (registrations count per address). */
  async function newUser() {
    const username = uniqueName();
    const payload = await register(apps[0]!.services, { email: `${username}@example.com`, username, password: PASSWORD }, { userAgent: null, address: address() });
    return { id: payload.user.id, username, accessToken: payload.accessToken, refreshToken: payload.refreshToken };
  }
  const login = (login: string, password: string, ip: string) => gql(next(), LOGIN, { input: { login, password } }, { headers: from(ip) });

  describe('logins', () => {
    it('locks an account for the address that failed 10 times, not for its owner elsewhere, longer each time', async () => {
      const victim = await newUser();
      const attacker = address();
      for (let i = 0; i < 10; i += 1) expect(codeOf(await login(victim.username, `wrong password ${i}`, attacker))).toBe('UNAUTHENTICATED');
      // The 11th, even with the right password, is refused without a check.
      const eleventh = await login(victim.username, PASSWORD, attacker);
      expect(codeOf(eleventh)).toBe('RATE_LIMITED');
      const firstLockout = eleventh.errors?.[0]?.extensions?.retryAfterSeconds as number;
      expect(firstLockout).toBeGreaterThanOrEqual(2);
      expect(firstLockout).toBeLessThanOrEqual(3);
      // Its email counts as the same account.
      expect(codeOf(await login(`${victim.username}@example.com`, PASSWORD, attacker))).toBe('RATE_LIMITED');
      // The owner, from home, signs in.
      const owner = await login(victim.username, PASSWORD, address());
      expect(owner.errors).toBeUndefined();
      expect(owner.data.login.user.id).toBe(victim.id);

      // After the lockout, ten more failures lock it twice as long.
      await sleep(firstLockout * 1_000 + 100);
      for (let i = 0; i < 10; i += 1) expect(codeOf(await login(victim.username, `wrong again ${i}`, attacker))).toBe('UNAUTHENTICATED');
      const again = await login(victim.username, PASSWORD, attacker);
      expect(codeOf(again)).toBe('RATE_LIMITED');
      // 6 s, less what passed since the lockout began.
      expect(again.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(3);
      expect(again.errors?.[0]?.extensions?.retryAfterSeconds).toBeLessThanOrEqual(6);
    });

    it('clears the count of an account and address on a successful login', async () => {
      const user = await newUser();
      const ip = address();
      for (let i = 0; i < 9; i += 1) expect(codeOf(await login(user.username, 'mistyped password', ip))).toBe('UNAUTHENTICATED');
      expect((await login(user.username, PASSWORD, ip)).errors).toBeUndefined();
      for (let i = 0; i < 9; i += 1) expect(codeOf(await login(user.username, 'mistyped password', ip))).toBe('UNAUTHENTICATED');
      expect((await login(user.username, PASSWORD, ip)).errors).toBeUndefined();
    });

    it('counts wrong current passwords of changePassword and deleteAccount as failed logins of that account and address', async () => {
      const user = await newUser();
      const ip = address();
      const change = `mutation ($current: String!) { changePassword(currentPassword: $current, newPassword: "a brand new passphrase") }`;
      const remove = `mutation ($password: String!) { deleteAccount(password: $password) }`;
      for (let i = 0; i < 5; i += 1) {
        expect(codeOf(await gql(next(), change, { current: `stolen token, wrong guess ${i}` }, { token: user.accessToken, headers: from(ip) }))).toBe('BAD_USER_INPUT');
        expect(codeOf(await gql(next(), remove, { password: `another guess ${i}` }, { token: user.accessToken, headers: from(ip) }))).toBe('BAD_USER_INPUT');
      }
      // The 11th attempt from that address is refused, however it comes, the right password included.
      expect(codeOf(await gql(next(), change, { current: PASSWORD }, { token: user.accessToken, headers: from(ip) }))).toBe('RATE_LIMITED');
      expect(codeOf(await login(user.username, PASSWORD, ip))).toBe('RATE_LIMITED');
      // The owner elsewhere still signs in, and the account still exists with its password.
      expect((await login(user.username, PASSWORD, address())).errors).toBeUndefined();
    });

    it('locks an account guessed at from many addresses (RATE_LIMIT_LOGIN_ACCOUNT_FAILURES)', async () => {
      const user = await newUser();
      for (let i = 0; i < 25; i += 1) expect(codeOf(await login(user.username, 'guess', address()))).toBe('UNAUTHENTICATED');
      expect(codeOf(await login(user.username, PASSWORD, address()))).toBe('RATE_LIMITED');
    });

    it('limits login and register attempts per address (RATE_LIMIT_AUTH_ATTEMPTS)', async () => {
      const ip = address();
      // Unknown names: each its own account, so only the address adds up.
      for (let i = 0; i < 25; i += 1) expect(codeOf(await login(uniqueName(), 'guess', ip))).toBe('UNAUTHENTICATED');
      const refused = await login(uniqueName(), 'guess', ip);
      expect(codeOf(refused)).toBe('RATE_LIMITED');
      expect(refused.errors?.[0]?.message).toMatch(/sign-in attempts from your network/);
      expect(refused.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(0);
      const name = uniqueName();
      const registering = await gql(next(), 'mutation ($i: RegisterInput!) { register(input: $i) { accessToken } }', { i: { email: `${name}@example.com`, username: name, password: PASSWORD } }, { headers: from(ip) });
      expect(codeOf(registering)).toBe('RATE_LIMITED');
      expect(codeOf(await login(uniqueName(), 'guess', address()))).toBe('UNAUTHENTICATED');
    });

    it('limits registrations per address (RATE_LIMIT_REGISTER)', async () => {
      const ip = address();
      const registerFrom = (where: string) => {
        const name = uniqueName();
        return gql(next(), 'mutation ($i: RegisterInput!) { register(input: $i) { user { id } } }', { i: { email: `${name}@example.com`, username: name, password: PASSWORD } }, { headers: from(where) });
      };
      for (let i = 0; i < 3; i += 1) expect((await registerFrom(ip)).errors).toBeUndefined();
      expect(codeOf(await registerFrom(ip))).toBe('RATE_LIMITED');
      expect((await registerFrom(address())).errors).toBeUndefined();
    });
  });

  describe('per user and per session', () => {
    it('takes a burst of 30 sends to a chat and refuses the 31st, while another chat still takes messages', async () => {
      const [alice, bob, carol] = await Promise.all([newUser(), newUser(), newUser()]);
      const [chat, other] = await Promise.all([
        createChat(apps[0]!.services, alice.id, { kind: 'DIRECT', memberIds: [bob.id] }),
        createChat(apps[0]!.services, alice.id, { kind: 'DIRECT', memberIds: [carol.id] }),
      ]);
      const send = (chatId: string, i: number) => gql(next(), SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text: `burst ${i}` } }, { token: alice.accessToken });
      const results = await Promise.all(Array.from({ length: 31 }, (_, i) => send(chat.id, i)));
      const refused = results.filter((result) => codeOf(result) === 'RATE_LIMITED');
      expect(results.filter((result) => result.data?.sendMessage)).toHaveLength(30);
      expect(refused).toHaveLength(1);
      expect(refused[0]!.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(await apps[0]!.services.prisma.message.count({ where: { chatId: chat.id } })).toBe(30);
      expect((await send(other.id, 0)).data?.sendMessage).toBeTruthy();
    });

    it('counts encrypted sends against the same budget as plaintext ones', async () => {
      const [alice, bob] = await Promise.all([newUser(), newUser()]);
      const device = await addDevice(apps[0]!, alice as TestUser);
      // Bob has no device yet and Alice no other one: a send addresses no device at all.
      const chat = await createChat(apps[0]!.services, alice.id, { kind: 'DIRECT', memberIds: [bob.id], encrypted: true });
      const sendEncrypted = () =>
        gql(next(), 'mutation ($i: SendEncryptedMessageInput!) { sendEncryptedMessage(input: $i) { id } }', { i: { chatId: chat.id, kind: 'TEXT', envelopes: [] } }, { token: device.token });
      const results = await Promise.all(Array.from({ length: 31 }, sendEncrypted));
      expect(results.filter((result) => result.data?.sendEncryptedMessage)).toHaveLength(30);
      expect(results.filter((result) => codeOf(result) === 'RATE_LIMITED')).toHaveLength(1);
    });

    const twoThenRefused: Array<{ what: string; run: (user: Awaited<ReturnType<typeof newUser>>, extra: { other: string; chat: string }) => Promise<GraphQLResponse> }> = [
      { what: 'searchUsers', run: (user) => gql(next(), '{ searchUsers(query: "zz") { edges { node { id } } } }', {}, { token: user.accessToken }) },
      { what: 'setTyping', run: (user, { chat }) => gql(next(), START_TYPING, { chatId: chat, isTyping: true }, { token: user.accessToken }) },
      { what: 'addContact', run: (user, { other }) => gql(next(), ADD_CONTACT, { userId: other }, { token: user.accessToken }) },
      {
        what: 'createChat',
        run: (user) => gql(next(), CREATE_CHAT, { input: { kind: 'GROUP', title: 'limits', memberIds: [] } }, { token: user.accessToken }),
      },
    ];
    it.each(twoThenRefused)('limits $what per user', async ({ run }) => {
      const [user, other] = await Promise.all([newUser(), newUser()]);
      const chat = await createChat(apps[0]!.services, user.id, { kind: 'DIRECT', memberIds: [other.id] });
      const extra = { other: other.id, chat: chat.id };
      for (let i = 0; i < 2; i += 1) expect((await run(user, extra)).errors).toBeUndefined();
      const refused = await run(user, extra);
      expect(codeOf(refused)).toBe('RATE_LIMITED');
      expect(refused.errors?.[0]?.extensions?.retryAfterSeconds).toBeGreaterThan(0);
      // Another user is not affected.
      expect((await run(other, { other: user.id, chat: chat.id })).errors).toBeUndefined();
    });

    it('limits refreshToken per session', async () => {
      const user = await newUser();
      let token = user.refreshToken;
      for (let i = 0; i < 2; i += 1) {
        const result = await gql(next(), REFRESH_TOKEN, { refreshToken: token });
        expect(result.errors).toBeUndefined();
        token = result.data.refreshToken.refreshToken;
      }
      expect(codeOf(await gql(next(), REFRESH_TOKEN, { refreshToken: token }))).toBe('RATE_LIMITED');
      // Another session of the same user refreshes.
      const second = await login(user.username, PASSWORD, address());
      expect((await gql(next(), REFRESH_TOKEN, { refreshToken: second.data.login.refreshToken })).errors).toBeUndefined();
    });

    async function upload(token: string, bytes: number) {
      const form = new FormData();
      form.set('operations', JSON.stringify({ query: 'mutation ($f: File!) { uploadFile(file: $f) { id } }', variables: { f: null } }));
      form.set('map', JSON.stringify({ 0: ['variables.f'] }));
      form.set('0', new Blob([new Uint8Array(bytes).fill(7)]), 'limits.bin');
      const response = await fetch(`${bases[turn++ % bases.length]}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
      return (await response.json()) as GraphQLResponse;
    }

    it('limits uploads per user, by count and by bytes', async () => {
      const [counted, heavy] = await Promise.all([newUser(), newUser()]);
      for (let i = 0; i < 3; i += 1) expect((await upload(counted.accessToken, 10)).errors).toBeUndefined();
      const fourth = await upload(counted.accessToken, 10);
      expect(codeOf(fourth)).toBe('RATE_LIMITED');
      expect(fourth.errors?.[0]?.message).toMatch(/Too many uploads/);
      expect((await upload(heavy.accessToken, 60_000)).errors).toBeUndefined();
      const over = await upload(heavy.accessToken, 60_000);
      expect(codeOf(over)).toBe('RATE_LIMITED');
      expect(over.errors?.[0]?.message).toMatch(/bytes uploaded/);
      expect(await apps[0]!.services.prisma.attachment.count({ where: { uploaderId: heavy.id } })).toBe(1);
    });

    it('answers a refusal over graphql-ws as an error, on a socket that stays open', async () => {
      const [alice, bob] = await Promise.all([newUser(), newUser()]);
      const chat = await createChat(apps[0]!.services, alice.id, { kind: 'DIRECT', memberIds: [bob.id] });
      const connection = sockets.connect(`${bases[bases.length - 1]}/graphql`, alice.accessToken);
      const results = [];
      for (let i = 0; i < 3; i += 1) results.push(await subscribe(connection, START_TYPING, { chatId: chat.id, isTyping: true }).next());
      expect(results.slice(0, 2).map((result) => result.data?.setTyping)).toEqual([true, true]);
      expect(results[2]!.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED' });
      expect((await subscribe(connection, '{ me { id } }').next()).data).toEqual({ me: { id: alice.id } });
    });
  });
});

describe('RATE_LIMITS=off', () => {
  it('lets everything through, and says so at start', async () => {
    const { logs, logger } = capturedLogs();
    const app = await startTestApp({ RATE_LIMITS: 'off', RATE_LIMIT_LOGIN_FAILURES: '2/15m' }, { logger });
    try {
      expect(logs.some((entry) => entry.level === 40 && /RATE_LIMITS=off/.test(entry.msg))).toBe(true);
      const username = uniqueName();
      await register(app.services, { email: `${username}@example.com`, username, password: PASSWORD }, { userAgent: null, address: 'local' });
      for (let i = 0; i < 4; i += 1) expect(codeOf(await gql(app, LOGIN, { input: { login: username, password: 'wrong' } }))).toBe('UNAUTHENTICATED');
      expect((await gql(app, LOGIN, { input: { login: username, password: PASSWORD } })).errors).toBeUndefined();
    } finally {
      await app.stop();
    }
  });
});
