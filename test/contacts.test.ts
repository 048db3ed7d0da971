import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { ADD_CONTACT, BLOCK_USER, PRESENCE, REMOVE_CONTACT, SET_STATUS, START_TYPING, TYPING } from './support/operations.ts';
import { openConnections, settle, subscribe } from './support/ws-helpers.ts';

const CONTACTS = `query ($first: Int, $after: String) { contacts(first: $first, after: $after) { edges { node { id username } } pageInfo { hasNextPage endCursor } } }`;
const UNBLOCK = `mutation ($u: ID!) { unblockUser(userId: $u) }`;

let app: App;
let url: string;
const sockets = openConnections();
const prefix = `kocmoc-test:${randomUUID()}:`;

beforeAll(async () => {
  app = await startTestApp({ TYPING_TTL: '2s' }, { presence: { offlineGraceMs: 100, keyPrefix: prefix }, channelPrefix: prefix });
  url = (await app.start()).url;
});
afterAll(async () => {
  await sockets.closeAll();
  await app?.stop();
});

const ws = (user: TestUser) => sockets.connect(url, user.accessToken);

describe('contacts', () => {
  it('adds, lists by username with paging, and removes', async () => {
    const [me, ...others] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
    for (const other of others) {
      const added = await gql(app, ADD_CONTACT, { userId: other.id }, { token: me.accessToken });
      expect(added.data.addContact.id).toBe(other.id);
    }
    // Adding twice is harmless.
    expect((await gql(app, ADD_CONTACT, { userId: others[0]!.id }, { token: me.accessToken })).errors).toBeUndefined();

    const names: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const result: any = await gql(app, CONTACTS, { first: 2, after }, { token: me.accessToken });
      names.push(...result.data.contacts.edges.map((e: any) => e.node.username));
      if (!result.data.contacts.pageInfo.hasNextPage) break;
      after = result.data.contacts.pageInfo.endCursor;
    }
    expect(names).toEqual(others.map((o) => o.username).sort());

    const removed = await gql(app, REMOVE_CONTACT, { userId: others[0]!.id }, { token: me.accessToken });
    expect(removed.data.removeContact).toBe(true);
    const again = await gql(app, REMOVE_CONTACT, { userId: others[0]!.id }, { token: me.accessToken });
    expect(again.data.removeContact).toBe(false);
  });

  it('refuses yourself, unknown users and anonymous callers', async () => {
    const me = await registerUser(app);
    expect(codeOf(await gql(app, ADD_CONTACT, { userId: me.id }, { token: me.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, `mutation { addContact(userId: "ghost") { id } }`, {}, { token: me.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, CONTACTS, {}))).toBe('UNAUTHENTICATED');
  });
});

describe('blocking', () => {
  it('lists blocked users and unblocks', async () => {
    const [me, pest] = await Promise.all([registerUser(app), registerUser(app)]);
    expect((await gql(app, BLOCK_USER, { userId: pest.id }, { token: me.accessToken })).data.blockUser).toBe(true);
    expect((await gql(app, BLOCK_USER, { userId: pest.id }, { token: me.accessToken })).data.blockUser).toBe(true);
    expect((await gql(app, `{ blockedUsers { edges { node { id } } } }`, {}, { token: me.accessToken })).data.blockedUsers.edges).toEqual([{ node: { id: pest.id } }]);
    expect((await gql(app, UNBLOCK, { u: pest.id }, { token: me.accessToken })).data.unblockUser).toBe(true);
    expect((await gql(app, UNBLOCK, { u: pest.id }, { token: me.accessToken })).data.unblockUser).toBe(false);
    expect((await gql(app, `{ blockedUsers { edges { node { id } } } }`, {}, { token: me.accessToken })).data.blockedUsers.edges).toEqual([]);
    expect(codeOf(await gql(app, BLOCK_USER, { userId: me.id }, { token: me.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, BLOCK_USER, { userId: 'ghost' }, { token: me.accessToken }))).toBe('NOT_FOUND');
  });

  it('stops direct chats both ways, new and existing, and lifts with unblock', async () => {
    const [me, pest] = await Promise.all([registerUser(app), registerUser(app)]);
    const direct = await createChat(app, me, { kind: 'DIRECT', memberIds: [pest.id] });
    await gql(app, BLOCK_USER, { userId: pest.id }, { token: me.accessToken });
    const open = `mutation ($u: ID!) { createChat(input: { kind: DIRECT, memberIds: [$u] }) { id } }`;
    const send = `mutation ($c: ID!) { sendMessage(input: { chatId: $c, kind: TEXT, text: "hi" }) { id } }`;
    expect(codeOf(await gql(app, open, { u: me.id }, { token: pest.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, send, { c: direct }, { token: pest.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, send, { c: direct }, { token: me.accessToken }))).toBe('FORBIDDEN');
    await gql(app, UNBLOCK, { u: pest.id }, { token: me.accessToken });
    expect((await gql(app, send, { c: direct }, { token: pest.accessToken })).errors).toBeUndefined();
  });

  it('keeps group chats shared', async () => {
    const [me, pest, friend] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    const group = await createChat(app, friend, { kind: 'GROUP', title: 'Shared', memberIds: [me.id, pest.id] });
    await gql(app, BLOCK_USER, { userId: pest.id }, { token: me.accessToken });
    const sent = await sendText(app, pest, group, 'still here');
    const page = await gql(app, `query ($id: ID!) { chat(id: $id) { messages(last: 1) { edges { node { id } } } } }`, { id: group }, { token: me.accessToken });
    expect(page.data.chat.messages.edges[0].node.id).toBe(sent.id);
  });

  it('hides the blocker’s presence, status, lastSeenAt and typing from the blocked user', async () => {
    const [blocker, blocked] = await Promise.all([registerUser(app), registerUser(app)]);
    const group = await createChat(app, blocker, { kind: 'GROUP', title: 'Typing', memberIds: [blocked.id] });
    await gql(app, ADD_CONTACT, { userId: blocker.id }, { token: blocked.accessToken });
    const blockedConnection = ws(blocked);
    const presence = subscribe(blockedConnection, PRESENCE, { userIds: [blocker.id] });
    const typing = subscribe(blockedConnection, TYPING, { chatId: group });
    await settle();

    // Before the block: visible.
    const blockerConnection = ws(blocker);
    await blockerConnection.connected;
    expect((await presence.next()).data.presence).toEqual({ user: { id: blocker.id }, status: 'ONLINE', lastSeenAt: null });
    await gql(app, BLOCK_USER, { userId: blocked.id }, { token: blocker.accessToken });

    await gql(app, SET_STATUS, { status: 'BUSY' }, { token: blocker.accessToken });
    await gql(app, START_TYPING, { chatId: group, isTyping: true }, { token: blocker.accessToken });
    expect(await presence.nothingWithin(300)).toBe(true);
    expect(typing.results).toHaveLength(0);

    const seen = await gql(app, `query ($id: ID!) { user(id: $id) { status lastSeenAt email } }`, { id: blocker.id }, { token: blocked.accessToken });
    expect(seen.data.user).toEqual({ status: 'OFFLINE', lastSeenAt: null, email: null });
    // Others still see the blocker as they are.
    const other = await registerUser(app);
    const byOther = await gql(app, `query ($id: ID!) { user(id: $id) { status } }`, { id: blocker.id }, { token: other.accessToken });
    expect(byOther.data.user.status).toBe('BUSY');
  });
});
