import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { DRAFT_MAX_LENGTH } from '../src/chats/drafts.ts';
import { exportDocument } from '../src/users/data-export-document.ts';
import { codeOf, createChat, gql, registerUser, sendText, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { CREATE_CHAT, LOGIN } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const SAVE = `mutation ($c: ID!, $t: String, $r: ID) { saveDraft(chatId: $c, text: $t, replyToId: $r) { id draft { text replyTo { id } updatedAt } } }`;
const DRAFT = `query ($c: ID!) { chat(id: $c) { draft { text replyTo { id } } } }`;
const CHATS = `{ chats(first: 20) { edges { node { id draft { text } } } } }`;
const DRAFT_EVENTS = `subscription { draftEvents { chatId draft { text replyTo { id } } } }`;

let app: App;
let url: string;
const sockets = openConnections();
let [alice, bob] = [] as unknown as [TestUser, TestUser];
let chatId: string;

beforeAll(async () => {
  ({ app, url } = await startSocketTestApp());
  [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
  chatId = await createChat(app, alice, { kind: 'GROUP', title: 'Drafts', memberIds: [bob.id] });
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const save = (token: string, variables: { c?: string; t?: string | null; r?: string | null }) => gql(app, SAVE, { c: chatId, ...variables }, { token });
const draftOf = async (user: TestUser, chat = chatId) => (await gql(app, DRAFT, { c: chat }, { token: user.accessToken })).data.chat.draft;

describe('saveDraft', () => {
  it('keeps one draft per user and chat, encrypted at rest, until sending clears it', async () => {
    const replied = await sendText(app, bob, chatId, 'question');
    const saved = await save(alice.accessToken, { t: 'half a secret thought', r: replied.id });
    expect(saved.data.saveDraft.draft).toMatchObject({ text: 'half a secret thought', replyTo: { id: replied.id } });
    expect(await draftOf(bob)).toBeNull();

    const row = await app.services.prisma.chatDraft.findUniqueOrThrow({ where: { chatId_userId: { chatId, userId: alice.id } } });
    expect(Buffer.from(row.content).toString('utf8')).not.toContain('secret');
    expect(row.contentKeyId).toBe(app.services.config.messageEncryption.currentKeyId);

    await save(alice.accessToken, { t: 'a whole secret thought' });
    expect(await draftOf(alice)).toEqual({ text: 'a whole secret thought', replyTo: null });
    const list = await gql(app, CHATS, {}, { token: alice.accessToken });
    expect(list.data.chats.edges.find((e: any) => e.node.id === chatId).node.draft).toEqual({ text: 'a whole secret thought' });

    await sendText(app, alice, chatId, 'a whole secret thought');
    expect(await draftOf(alice)).toBeNull();
  });

  it('clears with an empty text, and a reply alone is a draft', async () => {
    const replied = await sendText(app, bob, chatId, 'reply to me');
    await save(alice.accessToken, { t: 'something' });
    expect((await save(alice.accessToken, { t: '  ' })).data.saveDraft.draft).toBeNull();
    expect((await save(alice.accessToken, { t: null, r: replied.id })).data.saveDraft.draft).toMatchObject({ text: '', replyTo: { id: replied.id } });
    expect((await save(alice.accessToken, {})).data.saveDraft.draft).toBeNull();
  });

  it('refuses strangers, long texts, replies from elsewhere and end-to-end encrypted chats', async () => {
    const stranger = await registerUser(app);
    expect(codeOf(await save(stranger.accessToken, { t: 'hi' }))).toBe('NOT_FOUND');
    const long = await save(alice.accessToken, { t: 'x'.repeat(DRAFT_MAX_LENGTH + 1) });
    expect([codeOf(long), long.errors?.[0]?.extensions?.field]).toEqual(['BAD_USER_INPUT', 'text']);
    expect((await save(alice.accessToken, { t: '😀'.repeat(DRAFT_MAX_LENGTH) })).errors).toBeUndefined();
    const elsewhere = await createChat(app, alice, { kind: 'GROUP', title: 'Elsewhere', memberIds: [] });
    const foreign = await sendText(app, alice, elsewhere, 'not here');
    const badReply = await save(alice.accessToken, { t: 'x', r: foreign.id });
    expect([codeOf(badReply), badReply.errors?.[0]?.extensions?.field]).toEqual(['BAD_USER_INPUT', 'replyToId']);
    const sealed = await gql(app, CREATE_CHAT, { input: { kind: 'GROUP', title: 'Sealed', memberIds: [], encrypted: true } }, { token: alice.accessToken });
    expect(codeOf(await save(alice.accessToken, { c: sealed.data.createChat.id, t: 'x' }))).toBe('BAD_USER_INPUT');
  });
});

describe('draftEvents', () => {
  it("follows the draft on all the user's devices live, and not on anyone else's", async () => {
    const login = await gql(app, LOGIN, { input: { login: alice.username, password: alice.password } });
    const phone = login.data.login.accessToken as string;
    const laptop = subscribe(sockets.connect(url, alice.accessToken), DRAFT_EVENTS);
    const tablet = subscribe(sockets.connect(url, phone), DRAFT_EVENTS);
    const bobs = subscribe(sockets.connect(url, bob.accessToken), DRAFT_EVENTS);
    await settle();

    await save(phone, { t: 'typed on the phone' });
    expect((await laptop.next()).data?.draftEvents).toEqual({ chatId, draft: { text: 'typed on the phone', replyTo: null } });
    expect((await tablet.next()).data?.draftEvents).toEqual({ chatId, draft: { text: 'typed on the phone', replyTo: null } });

    await sendText(app, alice, chatId, 'sent from the laptop');
    expect((await tablet.next()).data?.draftEvents).toEqual({ chatId, draft: null });
    expect((await laptop.next()).data?.draftEvents).toEqual({ chatId, draft: null });
    // Sending with no draft left tells nobody.
    await sendText(app, alice, chatId, 'again');
    expect(await laptop.nothingWithin(300)).toBe(true);
    expect(bobs.results).toEqual([]);
  });
});

describe('exportMyData', () => {
  it("holds the user's drafts, decrypted, and reactions", async () => {
    const user = await registerUser(app);
    const chat = await createChat(app, user, { kind: 'GROUP', title: 'Export', memberIds: [] });
    const message = await sendText(app, user, chat, 'export me');
    await save(user.accessToken, { c: chat, t: 'draft to export', r: message.id });
    await gql(app, `mutation ($m: ID!) { addReaction(messageId: $m, emoji: "📦") { id } }`, { m: message.id }, { token: user.accessToken });
    const document = JSON.parse(Buffer.concat(await exportDocument(app.services, user.id, new Date())).toString('utf8'));
    expect(document.drafts).toEqual([{ chatId: chat, text: 'draft to export', replyToId: message.id, updatedAt: expect.any(String) }]);
    expect(document.reactions).toEqual([{ messageId: message.id, emoji: '📦', createdAt: expect.any(String) }]);
  });
});

describe('account deletion', () => {
  it("erases the account's drafts and reactions at once", async () => {
    const leaving = await registerUser(app);
    const chat = await createChat(app, leaving, { kind: 'GROUP', title: 'Leaving', memberIds: [bob.id] });
    const message = await sendText(app, bob, chat, 'react to me');
    await save(leaving.accessToken, { c: chat, t: 'never sent' });
    await gql(app, `mutation ($m: ID!) { addReaction(messageId: $m, emoji: "👋") { id } }`, { m: message.id }, { token: leaving.accessToken });
    const deleted = await gql(app, `mutation ($p: String!) { deleteAccount(password: $p) }`, { p: leaving.password }, { token: leaving.accessToken });
    expect(deleted.errors).toBeUndefined();
    expect(await app.services.prisma.chatDraft.count({ where: { userId: leaving.id } })).toBe(0);
    expect(await app.services.prisma.messageReaction.count({ where: { userId: leaving.id } })).toBe(0);
  });
});
