// End-to-end encrypted chats through a real client (X3DH + Double Ratchet in test/support/e2e-client.ts):
// the server relays per-device ciphertext it cannot read, and stores no plaintext and no secret.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { deleteExpiredEnvelopes } from '../src/messages/envelopes.ts';
import { decryptEnvelope, encryptFor, secretsOf, startSession, type OutgoingEnvelope } from './support/e2e-client.ts';
import { addDevice, fetchBundles, signInAgain, type TestDevice } from './support/devices.ts';
import { capturedLogs, codeOf, gql, registerUser, startTestApp, type TestUser } from './support/helpers.ts';
import { MESSAGE_FIELDS } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const ENVELOPE = 'envelope { type ciphertext senderDeviceId senderDevice { id identityKey } }';
const SEND_ENCRYPTED = `mutation ($input: SendEncryptedMessageInput!) { sendEncryptedMessage(input: $input) { ${MESSAGE_FIELDS} ${ENVELOPE} } }`;
const EDIT_ENCRYPTED = `mutation ($input: EditEncryptedMessageInput!) { editEncryptedMessage(input: $input) { id editedAt } }`;
const MESSAGE_WITH_ENVELOPE = `query ($c: ID!) { chat(id: $c) { encrypted messages(last: 50) { edges { node { id seq text ${ENVELOPE} } } } } }`;
const ENCRYPTED_EVENTS = `subscription ($chatId: ID, $sinceSeq: Int) { messageEvents(chatId: $chatId, sinceSeq: $sinceSeq) {
  type seq message { id text sender { id } ${ENVELOPE} } } }`;
const CREATE_ENCRYPTED_CHAT = `mutation ($input: CreateChatInput!) { createChat(input: $input) { id encrypted kind } }`;

let app: App;
let url: string;
let base: string;
const { logs, logger } = capturedLogs('debug');
const sockets = openConnections();

const uploadDir = mkdtempSync(join(tmpdir(), 'kocmoc-e2e-uploads-'));

beforeAll(async () => {
  // The app logs, at debug level, through a logger the test reads: nothing it logs may hold plaintext.
  app = await startTestApp({ UPLOAD_DIR: uploadDir }, { logger });
  url = (await app.start()).url;
  base = url.replace(/\/graphql$/, '');
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
  rmSync(uploadDir, { recursive: true, force: true });
});

async function encryptedChat(owner: TestUser, memberIds: string[], kind: 'DIRECT' | 'GROUP' = 'DIRECT'): Promise<string> {
  const input = { kind, memberIds, encrypted: true, ...(kind === 'GROUP' ? { title: 'Secret' } : {}) };
  const result = await gql(app, CREATE_ENCRYPTED_CHAT, { input }, { token: owner.accessToken });
  expect(result.data.createChat).toMatchObject({ encrypted: true, kind });
  return result.data.createChat.id;
}

/** Envelopes from `from` to every device in `to`, opening sessions (X3DH) with those it has none with. */
async function envelopesFor(from: TestDevice, to: TestDevice[], plaintext: string): Promise<OutgoingEnvelope[]> {
  for (const device of to) {
    if (from.sessions.has(device.id)) continue;
    const [bundle] = await fetchBundles(app, from.token, device.user.id, [device.id]);
    startSession(from, bundle!);
  }
  return to.map((device) => encryptFor(from, device.id, plaintext));
}

const sendEncrypted = (from: TestDevice, chatId: string, envelopes: OutgoingEnvelope[], extra: Record<string, unknown> = {}) =>
  gql(app, SEND_ENCRYPTED, { input: { chatId, kind: 'TEXT', envelopes, ...extra } }, { token: from.token });

/** What `device` reads of a message through the API, decrypted. */
async function readAs(device: TestDevice, chatId: string, messageId: string): Promise<string> {
  const result = await gql(app, MESSAGE_WITH_ENVELOPE, { c: chatId }, { token: device.token });
  const node = result.data.chat.messages.edges.map((edge: any) => edge.node).find((m: any) => m.id === messageId);
  expect(node.text).toBeNull();
  return decryptEnvelope(device, node.envelope.senderDeviceId, node.envelope);
}

/** Every row of every table of ours, as text (bytea as hex): what a database leak would hand over. */
async function everyRow(): Promise<string> {
  const { prisma } = app.services;
  const tables = await prisma.$queryRaw<Array<{ name: string }>>`
    SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '\\_prisma%'`;
  const dumps = await Promise.all(tables.map(({ name }) => prisma.$queryRawUnsafe<Array<{ row: string }>>(`SELECT row_to_json(t)::text AS row FROM "${name}" t`)));
  return dumps.flat().map((r) => r.row).join('\n');
}

describe('an end-to-end encrypted chat', () => {
  let alice: TestUser;
  let bob: TestUser;
  let phone: TestDevice; // Alice's
  let laptop: TestDevice; // Alice's
  let bobPhone: TestDevice;
  let bobLaptop: TestDevice;
  let chatId: string;
  const secret = `Meet me at the old oak at ${randomUUID()}`;
  const reply = `I will bring the map ${randomUUID()}`;

  beforeAll(async () => {
    [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    phone = await addDevice(app, alice);
    laptop = await addDevice(app, alice, await signInAgain(app, alice));
    bobPhone = await addDevice(app, bob);
    bobLaptop = await addDevice(app, bob, await signInAgain(app, bob));
    chatId = await encryptedChat(alice, [bob.id]);
  });

  it('relays PREKEY_MESSAGE envelopes that each device decrypts, live and from history, and shows no device another’s', async () => {
    const live = [laptop, bobPhone, bobLaptop].map((device) => ({ device, events: subscribe(sockets.connect(url, device.token), ENCRYPTED_EVENTS, { chatId }) }));
    await settle();
    const envelopes = await envelopesFor(phone, [laptop, bobPhone, bobLaptop], secret);
    expect(envelopes.map((e) => e.type)).toEqual(['PREKEY_MESSAGE', 'PREKEY_MESSAGE', 'PREKEY_MESSAGE']);
    const sent = await sendEncrypted(phone, chatId, envelopes, { clientMessageId: 'first' });
    expect(sent.errors).toBeUndefined();
    const message = sent.data.sendEncryptedMessage;
    expect(message).toMatchObject({ seq: 1, kind: 'TEXT', text: null, location: null, envelope: null, sender: { id: alice.id } });

    for (const { device, events } of live) {
      const event = (await events.next()).data.messageEvents;
      expect(event).toMatchObject({ type: 'CREATED', seq: 1, message: { id: message.id, text: null, envelope: { type: 'PREKEY_MESSAGE', senderDeviceId: phone.id } } });
      expect(event.message.envelope.senderDevice.identityKey).toBe(Buffer.from(phone.keys.identity.publicKey).toString('base64'));
      expect(event.message.envelope.ciphertext).toBe(envelopes.find((e) => e.deviceId === device.id)!.ciphertext);
      expect(decryptEnvelope(device, phone.id, event.message.envelope)).toBe(secret);
    }
    // Catch-up after a reconnect carries each device's own envelope too.
    const catchUp = subscribe(sockets.connect(url, bobLaptop.token), ENCRYPTED_EVENTS, { chatId, sinceSeq: 0 });
    expect((await catchUp.next()).data.messageEvents.message.envelope.ciphertext).toBe(envelopes[2]!.ciphertext);
    // The same clientMessageId again is the same message.
    expect((await sendEncrypted(phone, chatId, envelopes, { clientMessageId: 'first' })).data.sendEncryptedMessage.id).toBe(message.id);
  });

  it('lets Bob answer with a ratchet message, and deletes a device’s envelopes once it marked them read', async () => {
    const envelopes = await envelopesFor(bobPhone, [phone, laptop, bobLaptop], reply);
    expect(envelopes.find((e) => e.deviceId === phone.id)!.type).toBe('MESSAGE');
    const sent = await sendEncrypted(bobPhone, chatId, envelopes, { replyToId: (await lastMessageId()) });
    expect(sent.data.sendEncryptedMessage).toMatchObject({ seq: 2, text: null, replyTo: { id: expect.any(String) } });
    const id = sent.data.sendEncryptedMessage.id;
    expect(await readAs(phone, chatId, id)).toBe(reply);
    expect(await readAs(laptop, chatId, id)).toBe(reply);
    // Phone's next message is a plain ratchet message to Bob's phone, after the DH ratchet turned.
    expect((await envelopesFor(phone, [bobPhone], 'ok'))[0]!.type).toBe('MESSAGE');

    const { prisma } = app.services;
    await gql(app, `mutation ($c: ID!, $m: ID!) { markRead(chatId: $c, messageId: $m) { id } }`, { c: chatId, m: id }, { token: phone.token });
    expect(await prisma.messageEnvelope.count({ where: { deviceId: phone.id } })).toBe(0);
    // Alice's laptop has not read it yet: its envelope stays, though Alice's read position moved.
    expect(await prisma.messageEnvelope.count({ where: { deviceId: laptop.id, messageId: id } })).toBe(1);
    // Bob's laptop never reads it: past ENCRYPTED_ENVELOPE_RETENTION (30 days) its envelope goes anyway.
    const retentionMs = app.services.config.e2e.envelopeRetentionMs;
    expect(retentionMs).toBe(30 * 24 * 3600_000);
    await prisma.messageEnvelope.updateMany({ where: { deviceId: bobLaptop.id, messageId: id }, data: { createdAt: new Date(Date.now() - retentionMs - 60_000) } });
    expect(await deleteExpiredEnvelopes(app.services, new Date(Date.now() - retentionMs))).toBeGreaterThanOrEqual(1);
    expect(await prisma.messageEnvelope.count({ where: { deviceId: bobLaptop.id, messageId: id } })).toBe(0);
    expect(await prisma.messageEnvelope.count({ where: { deviceId: laptop.id, messageId: id } })).toBe(1);
  });

  it('stores no plaintext and no key material but public keys anywhere: tables and logs', async () => {
    const rows = await everyRow();
    const hexOf = (text: string) => Buffer.from(text).toString('hex');
    for (const plaintext of [secret, reply]) {
      expect(rows).not.toContain(plaintext);
      expect(rows).not.toContain(hexOf(plaintext));
      expect(JSON.stringify(logs)).not.toContain(plaintext);
    }
    for (const device of [phone, laptop, bobPhone, bobLaptop]) {
      for (const key of secretsOf(device)) expect(rows).not.toContain(key);
      // The public identity key is there (as bytea hex): the check above can find what is stored.
      expect(rows).toContain(Buffer.from(device.keys.identity.publicKey).toString('hex'));
    }
  });

  it('refuses envelopes that miss a device or address one outside the chat, naming them', async () => {
    const envelopes = await envelopesFor(phone, [bobPhone, bobLaptop], 'incomplete');
    const missing = await sendEncrypted(phone, chatId, envelopes);
    expect(codeOf(missing)).toBe('CONFLICT');
    expect(missing.errors![0]!.extensions).toMatchObject({
      field: 'input.envelopes',
      missingDeviceIds: [laptop.id],
      missingDevices: [{ deviceId: laptop.id, userId: alice.id }],
      extraDeviceIds: [],
    });
    const stranger = await registerUser(app);
    const outsider = await addDevice(app, stranger);
    const withOutsider = [...(await envelopesFor(phone, [laptop], 'x')), ...envelopes, ...(await envelopesFor(phone, [outsider], 'x'))];
    const extra = await sendEncrypted(phone, chatId, withOutsider);
    expect(codeOf(extra)).toBe('CONFLICT');
    expect(extra.errors![0]!.extensions).toMatchObject({ missingDeviceIds: [], extraDeviceIds: [outsider.id] });
    const count = await app.services.prisma.message.count({ where: { chatId } });
    expect(count).toBe(2);
  });

  it('answers a retry of a message that went through with that message, even after the devices changed', async () => {
    const tablet = await addDevice(app, bob, await signInAgain(app, bob));
    const retried = await sendEncrypted(phone, chatId, await envelopesFor(phone, [laptop, bobPhone, bobLaptop], secret), { clientMessageId: 'first' });
    expect(retried.data.sendEncryptedMessage.seq).toBe(1);
    await gql(app, `mutation ($id: ID!) { revokeSession(id: $id) }`, { id: tablet.id }, { token: bob.accessToken });
  });

  it('refuses plaintext in an encrypted chat, and a session without keys', async () => {
    const text = await gql(app, `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }`, { input: { chatId, kind: 'TEXT', text: 'in the clear' } }, { token: alice.accessToken });
    expect(codeOf(text)).toBe('BAD_USER_INPUT');
    expect(text.errors![0]!.extensions!.field).toBe('input.text');
    const location = await gql(app, `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id } }`, {
      input: { chatId, kind: 'LOCATION', location: { latitude: 1, longitude: 2 } },
    }, { token: alice.accessToken });
    expect(location.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.location' });
    const keyless = await signInAgain(app, alice);
    const refused = await gql(app, SEND_ENCRYPTED, { input: { chatId, kind: 'TEXT', envelopes: [] } }, { token: keyless });
    expect(codeOf(refused)).toBe('FORBIDDEN');
    const bad = await sendEncrypted(phone, chatId, [{ deviceId: laptop.id, type: 'MESSAGE', ciphertext: 'not base64!' }]);
    expect(bad.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.envelopes.0.ciphertext' });
  });

  it('edits as new envelopes and deletes like a plaintext message', async () => {
    const id = await lastMessageId();
    const edit = await envelopesFor(bobPhone, [phone, laptop, bobLaptop], 'edited reply');
    const edited = await gql(app, EDIT_ENCRYPTED, { input: { id, envelopes: edit } }, { token: bobPhone.token });
    expect(edited.data.editEncryptedMessage.editedAt).toEqual(expect.any(String));
    expect(await readAs(phone, chatId, id)).toBe('edited reply');
    const plainEdit = await gql(app, `mutation ($id: ID!) { editMessage(id: $id, text: "x") { id } }`, { id }, { token: bob.accessToken });
    expect(codeOf(plainEdit)).toBe('BAD_USER_INPUT');
    await gql(app, `mutation ($id: ID!) { deleteMessage(id: $id) { id } }`, { id }, { token: bob.accessToken });
    expect(await app.services.prisma.messageEnvelope.count({ where: { messageId: id } })).toBe(0);
  });

  async function lastMessageId(): Promise<string> {
    const chat = await app.services.prisma.chat.findUniqueOrThrow({ where: { id: chatId }, select: { lastMessageId: true } });
    return chat.lastMessageId!;
  }
});

describe('encrypted attachments and chats', () => {
  it('stores an encrypted upload exactly as sent, unsniffed, and sends it only in an encrypted message', async () => {
    const user = await registerUser(app);
    const peer = await registerUser(app);
    const device = await addDevice(app, user);
    const peerDevice = await addDevice(app, peer);
    // Ciphertext that happens to start like a PNG: an encrypted upload is never sniffed.
    const bytes = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(1000, 7)]);
    const form = new FormData();
    form.append('operations', JSON.stringify({ query: 'mutation ($f: File!) { uploadFile(file: $f, encrypted: true) { id mimeType name thumbnailUrl kind } }', variables: { f: null } }));
    form.append('map', JSON.stringify({ 0: ['variables.f'] }));
    form.append('0', new Blob([bytes]), 'holiday.png');
    const uploaded = (await (await fetch(url, { method: 'POST', body: form, headers: { authorization: `Bearer ${user.accessToken}` } })).json()) as any;
    expect(uploaded.data.uploadFile).toMatchObject({ mimeType: 'application/octet-stream', name: 'encrypted.bin', thumbnailUrl: null, kind: null });
    const attachmentId = uploaded.data.uploadFile.id;
    const download = await fetch(`${base}/files/${attachmentId}`, { headers: { authorization: `Bearer ${user.accessToken}` } });
    expect(Buffer.from(await download.arrayBuffer()).equals(bytes)).toBe(true);

    const chatId = await encryptedChat(user, [peer.id]);
    const envelopes = await envelopesFor(device, [peerDevice], JSON.stringify({ key: 'k', name: 'holiday.png' }));
    const sent = await gql(app, SEND_ENCRYPTED, { input: { chatId, kind: 'IMAGE', envelopes, attachmentId } }, { token: device.token });
    expect(sent.errors).toBeUndefined();
    const peerDownload = await fetch(`${base}/files/${attachmentId}`, { headers: { authorization: `Bearer ${peer.accessToken}` } });
    expect(peerDownload.status).toBe(200);
    const imageUpload = await app.services.prisma.attachment.create({
      data: { uploaderId: user.id, kind: 'IMAGE', name: 'a.png', mimeType: 'image/png', size: 1, storageKey: randomUUID() },
    });
    const plain = await gql(app, SEND_ENCRYPTED, { input: { chatId, kind: 'IMAGE', envelopes, attachmentId: imageUpload.id } }, { token: device.token });
    expect(plain.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.attachmentId' });
  });

  it('keeps a plaintext and an encrypted direct chat apart for one pair, and refuses encrypted sends to a plaintext chat', async () => {
    const [a, b] = await Promise.all([registerUser(app), registerUser(app)]);
    const device = await addDevice(app, a);
    const plain = await gql(app, CREATE_ENCRYPTED_CHAT, { input: { kind: 'DIRECT', memberIds: [b.id] } }, { token: a.accessToken });
    const secretId = await encryptedChat(a, [b.id]);
    expect(plain.data.createChat.encrypted).toBe(false);
    expect(secretId).not.toBe(plain.data.createChat.id);
    expect(await encryptedChat(b, [a.id])).toBe(secretId);
    const refused = await gql(app, SEND_ENCRYPTED, { input: { chatId: plain.data.createChat.id, kind: 'TEXT', envelopes: [] } }, { token: device.token });
    expect(refused.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.chatId' });
  });
});
