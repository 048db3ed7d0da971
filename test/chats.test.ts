import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { ADD_CHAT_MEMBERS, CHAT_FIELDS, JOIN_CHAT, LEAVE_CHAT, REMOVE_CHAT_MEMBER, SET_CHAT_MEMBER_ROLE, UPDATE_CHAT } from './support/operations.ts';

const CREATE = `mutation ($input: CreateChatInput!) { createChat(input: $input) { ${CHAT_FIELDS} members { edges { node { role user { id } } } } } }`;
const CHAT = `query ($id: ID!) { chat(id: $id) { ${CHAT_FIELDS} members(first: 100) { edges { node { role user { id } } } } } }`;
const CHATS = `query ($first: Int, $after: String) { chats(first: $first, after: $after) { edges { cursor node { id title } } pageInfo { hasNextPage endCursor } } }`;

let app: App;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let dave: TestUser;

beforeAll(async () => {
  app = await startTestApp();
  [alice, bob, carol, dave] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
});
afterAll(async () => {
  await app?.stop();
});

const roles = (chat: any) =>
  Object.fromEntries(chat.members.edges.map((e: any) => [e.node.user.id, e.node.role])) as Record<string, string>;
const chatAs = (user: TestUser, id: string) => gql(app, CHAT, { id }, { token: user.accessToken });

describe('direct chats', () => {
  it('have exactly two members, and opening one twice returns the same chat (from either side)', async () => {
    const [x, y] = await Promise.all([registerUser(app), registerUser(app)]);
    const first = await gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [y.id] } }, { token: x.accessToken });
    expect(first.errors).toBeUndefined();
    expect(first.data.createChat).toMatchObject({ kind: 'DIRECT', title: null, isPublic: false, myRole: 'MEMBER' });
    expect(Object.keys(roles(first.data.createChat)).sort()).toEqual([x.id, y.id].sort());
    const again = await gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [y.id, x.id] } }, { token: x.accessToken });
    const reverse = await gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [x.id] } }, { token: y.accessToken });
    expect(again.data.createChat.id).toBe(first.data.createChat.id);
    expect(reverse.data.createChat.id).toBe(first.data.createChat.id);
  });

  it('are created once when both sides open them at the same moment', async () => {
    const [x, y] = await Promise.all([registerUser(app), registerUser(app)]);
    const results = await Promise.all([
      gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [y.id] } }, { token: x.accessToken }),
      gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [x.id] } }, { token: y.accessToken }),
    ]);
    expect(results.map((r) => r.errors)).toEqual([undefined, undefined]);
    expect(results[0]!.data.createChat.id).toBe(results[1]!.data.createChat.id);
  });

  it.each([
    ['no other member', () => ({ kind: 'DIRECT', memberIds: [] }), 'input.memberIds'],
    ['only yourself', () => ({ kind: 'DIRECT', memberIds: [alice.id] }), 'input.memberIds'],
    ['two others', () => ({ kind: 'DIRECT', memberIds: [bob.id, carol.id] }), 'input.memberIds'],
    ['an unknown user', () => ({ kind: 'DIRECT', memberIds: ['nobody'] }), 'input.memberIds'],
    ['a title', () => ({ kind: 'DIRECT', memberIds: [bob.id], title: 'x' }), 'input.title'],
    ['public', () => ({ kind: 'DIRECT', memberIds: [bob.id], isPublic: true }), 'input.isPublic'],
  ])('refuse %s with BAD_USER_INPUT', async (_case, input, field) => {
    const result = await gql(app, CREATE, { input: input() }, { token: alice.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('cannot be opened with a user who blocked you, or whom you blocked', async () => {
    const [x, y] = await Promise.all([registerUser(app), registerUser(app)]);
    await app.services.prisma.userBlock.create({ data: { blockerId: y.id, blockedId: x.id } });
    expect(codeOf(await gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [y.id] } }, { token: x.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, CREATE, { input: { kind: 'DIRECT', memberIds: [x.id] } }, { token: y.accessToken }))).toBe('FORBIDDEN');
  });

  it('cannot be left, renamed or extended', async () => {
    const id = await createChat(app, alice, { kind: 'DIRECT', memberIds: [dave.id] });
    expect(codeOf(await gql(app, LEAVE_CHAT, { chatId: id }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, UPDATE_CHAT, { chatId: id, input: { title: 'x' } }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [carol.id] }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });
});

describe('group chats', () => {
  it('make the creator OWNER and the others MEMBER', async () => {
    const result = await gql(app, CREATE, { input: { kind: 'GROUP', title: ' Team ', memberIds: [bob.id, carol.id, bob.id] } }, { token: alice.accessToken });
    expect(result.data.createChat).toMatchObject({ kind: 'GROUP', title: 'Team', isPublic: false, myRole: 'OWNER', unreadCount: 0 });
    expect(roles(result.data.createChat)).toEqual({ [alice.id]: 'OWNER', [bob.id]: 'MEMBER', [carol.id]: 'MEMBER' });
    const asBob = await chatAs(bob, result.data.createChat.id);
    expect(asBob.data.chat.myRole).toBe('MEMBER');
  });

  it('need a title', async () => {
    const result = await gql(app, CREATE, { input: { kind: 'GROUP', memberIds: [bob.id] } }, { token: alice.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('input.title');
    const long = await gql(app, CREATE, { input: { kind: 'GROUP', title: 'x'.repeat(129), memberIds: [] } }, { token: alice.accessToken });
    expect(codeOf(long)).toBe('BAD_USER_INPUT');
  });

  it('are invisible to non-members: chat(id:) null exactly like an unknown id, mutations NOT_FOUND', async () => {
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Secret', memberIds: [bob.id] });
    const stranger = await chatAs(dave, id);
    const unknown = await chatAs(dave, 'no-such-chat');
    expect(stranger.errors).toBeUndefined();
    expect(stranger.data).toEqual({ chat: null });
    expect(unknown.data).toEqual({ chat: null });
    for (const mutation of [
      LEAVE_CHAT,
      JOIN_CHAT,
      `mutation ($chatId: ID!) { updateChat(chatId: $chatId, input: { title: "pwned" }) { id } }`,
      `mutation ($chatId: ID!) { addChatMembers(chatId: $chatId, userIds: ["x"]) { id } }`,
      `mutation ($chatId: ID!) { removeChatMember(chatId: $chatId, userId: "x") { id } }`,
    ]) {
      expect(codeOf(await gql(app, mutation, { chatId: id }, { token: dave.accessToken }))).toBe('NOT_FOUND');
    }
  });

  it('let owners and admins manage members; plain members get FORBIDDEN', async () => {
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Managed', memberIds: [bob.id] });
    expect(codeOf(await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [carol.id] }, { token: bob.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: id, userId: bob.id, role: 'ADMIN' }, { token: bob.accessToken }))).toBe('FORBIDDEN');
    expect((await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: id, userId: bob.id, role: 'ADMIN' }, { token: alice.accessToken })).errors).toBeUndefined();

    // Now an admin: adds (skipping those already in), removes plain members, not the owner.
    expect((await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [carol.id, dave.id, alice.id] }, { token: bob.accessToken })).errors).toBeUndefined();
    expect(roles((await chatAs(alice, id)).data.chat)).toEqual({ [alice.id]: 'OWNER', [bob.id]: 'ADMIN', [carol.id]: 'MEMBER', [dave.id]: 'MEMBER' });
    expect((await gql(app, REMOVE_CHAT_MEMBER, { chatId: id, userId: dave.id }, { token: bob.accessToken })).errors).toBeUndefined();
    expect(codeOf(await gql(app, REMOVE_CHAT_MEMBER, { chatId: id, userId: alice.id }, { token: bob.accessToken }))).toBe('FORBIDDEN');
    expect((await chatAs(dave, id)).data.chat).toBeNull();

    expect(codeOf(await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: ['ghost'] }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [] }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, REMOVE_CHAT_MEMBER, { chatId: id, userId: dave.id }, { token: alice.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, REMOVE_CHAT_MEMBER, { chatId: id, userId: alice.id }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    // The only owner cannot demote themselves.
    expect(codeOf(await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: id, userId: alice.id, role: 'MEMBER' }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });

  it('hand ownership to the oldest admin, else the oldest member, when the last owner leaves', async () => {
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Heirs', memberIds: [bob.id] });
    await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [carol.id] }, { token: alice.accessToken });
    await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [dave.id] }, { token: alice.accessToken });
    await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: id, userId: dave.id, role: 'ADMIN' }, { token: alice.accessToken });

    const leave = (user: TestUser) => gql(app, LEAVE_CHAT, { chatId: id }, { token: user.accessToken });
    expect((await leave(alice)).data.leaveChat).toBe(true);
    expect(roles((await chatAs(bob, id)).data.chat)).toEqual({ [bob.id]: 'MEMBER', [carol.id]: 'MEMBER', [dave.id]: 'OWNER' });
    expect((await chatAs(alice, id)).data.chat).toBeNull();

    expect((await leave(dave)).data.leaveChat).toBe(true);
    // No admin left: the oldest member (bob, there since creation) inherits.
    expect(roles((await chatAs(carol, id)).data.chat)).toEqual({ [bob.id]: 'OWNER', [carol.id]: 'MEMBER' });
  });

  it('keep exactly one heir when two owners leave at once', async () => {
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Race', memberIds: [bob.id, carol.id, dave.id] });
    await gql(app, SET_CHAT_MEMBER_ROLE, { chatId: id, userId: bob.id, role: 'OWNER' }, { token: alice.accessToken });
    await Promise.all([alice, bob].map((u) => gql(app, LEAVE_CHAT, { chatId: id }, { token: u.accessToken })));
    const after = roles((await chatAs(carol, id)).data.chat);
    expect(Object.values(after).filter((r) => r === 'OWNER')).toHaveLength(1);
    expect(Object.keys(after).sort()).toEqual([carol.id, dave.id].sort());
  });

  it('can be renamed and made public by owners and admins, and public ones joined by anyone', async () => {
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Old', memberIds: [bob.id] });
    expect(codeOf(await gql(app, UPDATE_CHAT, { chatId: id, input: { title: 'Mine' } }, { token: bob.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, JOIN_CHAT, { chatId: id }, { token: dave.accessToken }))).toBe('NOT_FOUND');
    const updated = await gql(app, UPDATE_CHAT, { chatId: id, input: { title: 'New', isPublic: true } }, { token: alice.accessToken });
    expect(updated.data.updateChat).toEqual({ id, title: 'New', isPublic: true });
    expect(codeOf(await gql(app, UPDATE_CHAT, { chatId: id, input: { title: '  ' } }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');

    const joined = await gql(app, JOIN_CHAT, { chatId: id }, { token: dave.accessToken });
    expect(joined.data.joinChat).toEqual({ id, myRole: 'MEMBER' });
    const again = await gql(app, JOIN_CHAT, { chatId: id }, { token: dave.accessToken });
    expect(again.data.joinChat).toEqual({ id, myRole: 'MEMBER' });
  });
});

describe('chats', () => {
  it('lists the viewer’s chats by most recent activity and pages without repeats', async () => {
    const me = await registerUser(app);
    const ids: string[] = [];
    for (const title of ['one', 'two', 'three', 'four']) ids.push(await createChat(app, me, { kind: 'GROUP', title, memberIds: [bob.id] }));
    await createChat(app, bob, { kind: 'GROUP', title: 'not mine', memberIds: [carol.id] });
    await sendText(app, me, ids[1]!, 'bump'); // "two" is now the most recently active

    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const result: any = await gql(app, CHATS, { first: 3, after }, { token: me.accessToken });
      seen.push(...result.data.chats.edges.map((e: any) => e.node.title));
      if (!result.data.chats.pageInfo.hasNextPage) break;
      after = result.data.chats.pageInfo.endCursor;
    }
    expect(seen).toEqual(['two', 'four', 'three', 'one']);
  });

  it('page through members in joining order', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, () => registerUser(app)));
    const id = await createChat(app, alice, { kind: 'GROUP', title: 'Members', memberIds: [] });
    for (const user of users) {
      await gql(app, ADD_CHAT_MEMBERS, { chatId: id, userIds: [user.id] }, { token: alice.accessToken });
    }
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: any = await gql(app, `query ($id: ID!, $after: String) { chat(id: $id) { members(first: 2, after: $after) {
        edges { node { user { id } } } pageInfo { hasNextPage endCursor } } } }`, { id, after }, { token: users[0]!.accessToken });
      seen.push(...result.data.chat.members.edges.map((e: any) => e.node.user.id));
      if (!result.data.chat.members.pageInfo.hasNextPage) break;
      after = result.data.chat.members.pageInfo.endCursor;
    }
    expect(seen).toEqual([alice.id, ...users.map((u) => u.id)]);
  });

  it('require sign-in and sane page sizes', async () => {
    expect(codeOf(await gql(app, CHATS, {}))).toBe('UNAUTHENTICATED');
    expect(codeOf(await gql(app, CHATS, { first: 101 }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, CHATS, { first: -1 }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });
});
