// deleteAccount: everything of the account erased (no row anywhere keeps its email, password hash
// or text), messages kept as from a deleted account, groups passed on, direct chats readable by the
// partner, the username reserved; other clients told over graphql-ws.
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, useUploadTestApp, uploadThroughFetch, type TestUser } from './support/helpers.ts';
import { ADD_CONTACT, BLOCK_USER, CHAT_EVENTS, CREATE_CHAT, LOGIN, MESSAGE_EVENTS, PRESENCE, REGISTER, SEND_MESSAGE, SET_CHAT_MEMBER_ROLE } from './support/operations.ts';
import { openConnections, settle, subscribe, type Subscription } from './support/ws-helpers.ts';

const DELETE_ACCOUNT = 'mutation ($p: String!) { deleteAccount(password: $p) }';
const EDIT = 'mutation ($id: ID!, $t: String!) { editMessage(id: $id, text: $t) { id } }';
const CHAT = `query ($c: ID!) { chat(id: $c) {
  myRole members { edges { node { role user { id deleted username displayName bio avatarUrl status lastSeenAt } } } }
  messages(last: 50) { edges { node { id text location { latitude } attachment { id } deletedAt clientMessageId edits { text } sender { id deleted } } } }
} }`;

let app: App;
let url: string;
const sockets = openConnections();

useUploadTestApp({ PUSH_ENABLED: 'false' }, (started, base) => {
  app = started;
  url = `${base}/graphql`;
});
// Registered after the app's: runs before it stops.
afterAll(() => sockets.closeAll());

const marker = (what: string) => `${what}-${Math.random().toString(36).slice(2, 10)}`;

/** Takes events until one matches (failing after `timeoutMs` without it). */
async function eventMatching<T>(subscription: Subscription<T>, matches: (data: T) => boolean, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { data, errors } = await subscription.next(Math.max(1, deadline - Date.now()));
    if (errors) throw new Error(JSON.stringify(errors));
    if (data && matches(data)) return data;
  }
}

/** Every row of every table of the database, as text, that contains `needle`. */
async function rowsContaining(needle: string) {
  const { prisma } = app.services;
  const tables = await prisma.$queryRaw<Array<{ name: string }>>`SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()`;
  const found: string[] = [];
  for (const { name } of tables) {
    const rows = await prisma.$queryRawUnsafe<Array<{ row: string }>>(`SELECT t::text AS row FROM "${name}" t WHERE strpos(t::text, $1) > 0`, needle);
    found.push(...rows.map((row) => `${name}: ${row.row}`));
  }
  return found;
}

describe('deleteAccount', () => {
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  let direct: string;
  let owned: string;
  let joined: string;
  const secrets = { bio: marker('bio'), name: marker('name'), text: marker('text'), edited: marker('edited'), caption: marker('caption'), file: `${marker('file')}.txt`, client: marker('client'), agent: marker('agent') };

  beforeAll(async () => {
    [alice, bob, carol] = await Promise.all([registerUser(app, { displayName: secrets.name }), registerUser(app), registerUser(app)]);
    await gql(app, `mutation ($b: String!) { updateProfile(input: { bio: $b }) { id } }`, { b: secrets.bio }, { token: alice.accessToken });
    direct = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    owned = await createChat(app, alice, { kind: 'GROUP', title: 'Alice owns', memberIds: [bob.id, carol.id] });
    await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: owned, userId: carol.id, role: 'ADMIN' }, { token: alice.accessToken });
    joined = await createChat(app, bob, { kind: 'GROUP', title: 'Bob owns', memberIds: [alice.id] });
  });

  it('refuses a wrong password and changes nothing', async () => {
    const result = await gql(app, DELETE_ACCOUNT, { p: 'not the password' }, { token: alice.accessToken });
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'password' });
    expect((await gql(app, '{ me { id deleted } }', {}, { token: alice.accessToken })).data.me).toEqual({ id: alice.id, deleted: false });
    expect(codeOf(await gql(app, DELETE_ACCOUNT, { p: alice.password }))).toBe('UNAUTHENTICATED');
  });

  it('erases the account everywhere at once, keeps chats readable and tells the other clients', async () => {
    const { prisma, storage } = app.services;
    // What alice leaves behind: messages of every kind with an edit history, uploads, contacts both
    // ways, blocks both ways, another signed-in device with a push subscription.
    const picture = await uploadThroughFetch(app, alice.accessToken, await sharp({ create: { width: 64, height: 64, channels: 3, background: '#036' } }).png().toBuffer());
    await gql(app, `mutation ($a: ID!) { updateProfile(input: { avatarAttachmentId: $a }) { id } }`, { a: picture.id }, { token: alice.accessToken });
    const file = await uploadThroughFetch(app, alice.accessToken, Buffer.from('a private file'), { kind: 'FILE', name: secrets.file });
    const first = await sendText(app, alice, direct, secrets.text, { clientMessageId: secrets.client });
    await gql(app, EDIT, { id: first.id, t: secrets.edited }, { token: alice.accessToken });
    await gql(app, SEND_MESSAGE, { input: { chatId: owned, kind: 'FILE', attachmentId: file.id, text: secrets.caption } }, { token: alice.accessToken });
    await gql(app, SEND_MESSAGE, { input: { chatId: joined, kind: 'LOCATION', location: { latitude: 51.5, longitude: -0.12 } } }, { token: alice.accessToken });
    const bobsMessage = await sendText(app, bob, direct, 'bob stays');
    await gql(app, ADD_CONTACT, { userId: bob.id }, { token: alice.accessToken });
    await gql(app, ADD_CONTACT, { userId: alice.id }, { token: bob.accessToken });
    await gql(app, BLOCK_USER, { userId: carol.id }, { token: alice.accessToken });
    const dave = await registerUser(app);
    await gql(app, BLOCK_USER, { userId: alice.id }, { token: dave.accessToken });
    const device = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': secrets.agent },
      body: JSON.stringify({ query: LOGIN, variables: { input: { login: alice.email, password: alice.password } } }),
    });
    const otherDevice = ((await device.json()) as any).data.login;
    const otherSession = app.services.tokens.readRefreshToken(otherDevice.refreshToken) as { sessionId: string };
    const endpoint = `https://push.example.com/${marker('endpoint')}`;
    await prisma.pushSubscription.create({ data: { userId: alice.id, sessionId: otherSession.sessionId, endpoint, p256dh: 'p256dh-key', auth: 'auth-secret' } });

    const before = await prisma.user.findUniqueOrThrow({ where: { id: alice.id } });
    const sealed = await prisma.$queryRaw<Array<{ hex: string }>>`
      SELECT encode("content", 'hex') AS hex FROM "Message" WHERE "senderId" = ${alice.id} AND "content" IS NOT NULL
      UNION ALL SELECT encode(e."content", 'hex') FROM "MessageEdit" e JOIN "Message" m ON m."id" = e."messageId" WHERE m."senderId" = ${alice.id}`;
    expect(sealed).toHaveLength(4);
    const storedKeys = (await prisma.attachment.findMany({ where: { uploaderId: alice.id } })).flatMap((a) => [a.storageKey, a.thumbnailKey].filter((key) => key !== null));
    expect(storedKeys).toHaveLength(3);

    // Live clients: alice's other device, bob following chats, messages and presence.
    const alicesSocket = sockets.connect(url, otherDevice.accessToken);
    const bobsSocket = sockets.connect(url, bob.accessToken);
    await Promise.all([alicesSocket.connected, bobsSocket.connected]);
    const chatEvents = subscribe(bobsSocket, CHAT_EVENTS);
    const messageEvents = subscribe(bobsSocket, MESSAGE_EVENTS);
    const presence = subscribe(bobsSocket, PRESENCE, { userIds: [alice.id] });
    await settle();

    const result = await gql(app, DELETE_ACCOUNT, { p: alice.password }, { token: alice.accessToken });
    expect(result.errors).toBeUndefined();
    expect(result.data.deleteAccount).toBe(true);

    // Every session ended: tokens refused, the other device's socket closed; no way back in.
    for (const token of [alice.accessToken, otherDevice.accessToken]) expect(codeOf(await gql(app, '{ me { id } }', {}, { token }))).toBe('UNAUTHENTICATED');
    expect(await alicesSocket.closed).toBe(4401);
    for (const login of [alice.username, alice.email]) {
      expect(codeOf(await gql(app, LOGIN, { input: { login, password: alice.password } }))).toBe('UNAUTHENTICATED');
    }

    // Bob's clients hear of it: presence OFFLINE, alice leaving both groups, the direct chat
    // updated, and her messages deleted.
    const offline = await eventMatching(presence, (e: any) => e.presence.user.id === alice.id && e.presence.status === 'OFFLINE');
    expect(offline.presence.lastSeenAt).toBeNull();
    const told = new Set<string>();
    const expected = [`UPDATED ${direct}`, `MEMBER_LEFT ${owned}`, `MEMBER_LEFT ${joined}`];
    await eventMatching(chatEvents, ({ chatEvents: e }: any) => {
      if (e.user?.id === alice.id) told.add(`${e.type} ${e.chatId}`);
      return expected.every((event) => told.has(event));
    });
    const deleted = await eventMatching(messageEvents, (e: any) => e.messageEvents.type === 'DELETED' && e.messageEvents.message.id === first.id);
    expect(deleted.messageEvents.message).toMatchObject({ text: null, sender: { id: alice.id } });

    // The direct chat stays readable by bob: alice's messages as from a deleted account, erased; his own intact.
    const seen = (await gql(app, CHAT, { c: direct }, { token: bob.accessToken })).data.chat;
    const member = seen.members.edges.map((e: any) => e.node.user).find((u: any) => u.id === alice.id);
    expect(member).toEqual({
      id: alice.id,
      deleted: true,
      username: `deleted_${alice.id.replaceAll('-', '')}`,
      displayName: 'Deleted account',
      bio: null,
      avatarUrl: null,
      status: 'OFFLINE',
      lastSeenAt: null,
    });
    const messages = seen.messages.edges.map((e: any) => e.node);
    expect(messages.find((m: any) => m.id === first.id)).toMatchObject({ text: null, clientMessageId: null, edits: [], sender: { id: alice.id, deleted: true } });
    expect(messages.find((m: any) => m.id === first.id).deletedAt).not.toBeNull();
    expect(messages.find((m: any) => m.id === bobsMessage.id)).toMatchObject({ text: 'bob stays', deletedAt: null });
    const writeToDeleted = await gql(app, SEND_MESSAGE, { input: { chatId: direct, kind: 'TEXT', text: 'hello?' } }, { token: bob.accessToken });
    expect(writeToDeleted.errors?.[0]).toMatchObject({ message: 'This account was deleted.', extensions: { code: 'FORBIDDEN' } });

    // Her groups: she is gone from both, the one she owned passed to its admin, her messages there erased.
    const ownedNow = (await gql(app, CHAT, { c: owned }, { token: carol.accessToken })).data.chat;
    expect(ownedNow.myRole).toBe('OWNER');
    expect(ownedNow.members.edges.map((e: any) => e.node.user.id).sort()).toEqual([bob.id, carol.id].sort());
    expect(ownedNow.messages.edges.map((e: any) => e.node)).toEqual([expect.objectContaining({ text: null, attachment: null, sender: { id: alice.id, deleted: true } })]);
    const joinedNow = (await gql(app, CHAT, { c: joined }, { token: bob.accessToken })).data.chat;
    expect(joinedNow.messages.edges.map((e: any) => e.node.location)).toEqual([null]);
    expect(await prisma.chatMember.count({ where: { userId: alice.id, chat: { kind: 'GROUP' } } })).toBe(0);

    // Contacts, blocks, sessions, push subscriptions, uploads (rows and bytes): gone.
    expect(await prisma.contact.count({ where: { OR: [{ ownerId: alice.id }, { userId: alice.id }] } })).toBe(0);
    expect(await prisma.userBlock.count({ where: { OR: [{ blockerId: alice.id }, { blockedId: alice.id }] } })).toBe(0);
    expect(await prisma.session.count({ where: { userId: alice.id } })).toBe(0);
    expect(await prisma.pushSubscription.count({ where: { userId: alice.id } })).toBe(0);
    expect(await prisma.attachment.count({ where: { uploaderId: alice.id } })).toBe(0);
    for (const key of storedKeys) expect(await storage.stat(key)).toBeNull();

    // No row anywhere keeps her email, password hash or any text of hers (sealed or not).
    const needles = [before.email!, before.passwordHash!, ...Object.values(secrets), endpoint, ...sealed.map((row) => row.hex)];
    for (const needle of needles) expect(await rowsContaining(needle), needle).toEqual([]);

    // Nobody finds, adds or starts a chat with the account; its username stays taken, its email is free.
    const search = await gql(app, `query ($q: String!) { searchUsers(query: $q) { edges { node { id } } } }`, { q: alice.username }, { token: bob.accessToken });
    expect(search.data.searchUsers.edges).toEqual([]);
    expect(codeOf(await gql(app, ADD_CONTACT, { userId: alice.id }, { token: carol.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, CREATE_CHAT, { input: { kind: 'DIRECT', memberIds: [alice.id] } }, { token: carol.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, CREATE_CHAT, { input: { kind: 'GROUP', title: 'x', memberIds: [alice.id] } }, { token: carol.accessToken }))).toBe('BAD_USER_INPUT');
    const taken = await gql(app, REGISTER, { input: { email: `${marker('new')}@example.com`, username: alice.username, password: 'another fine password' } });
    expect(taken.errors?.[0]?.extensions).toMatchObject({ code: 'CONFLICT', field: 'input.username' });
    const sameEmail = await gql(app, REGISTER, { input: { email: alice.email, username: marker('again').replace('-', '_'), password: 'another fine password' } });
    expect(sameEmail.errors).toBeUndefined();
    expect(sameEmail.data.register.user.id).not.toBe(alice.id);
  });
});
