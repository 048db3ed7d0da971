// Findings 3 and 5 of issue #14: `searchUsers` took `%` and `_` as wildcards, and a blocked user
// could still put the blocker into a new group, add them to a group, or to their contacts. Each
// attack first as described, then what it gets now: the same answer as for a user who does not exist.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, startTestApp, uniqueName, type TestUser } from './support/helpers.ts';
import { ADD_CHAT_MEMBERS, ADD_CONTACT, BLOCK_USER, CREATE_CHAT } from './support/operations.ts';

const SEARCH = `query ($q: String!) { searchUsers(query: $q, first: 100) { edges { node { id username displayName } } } }`;
let app: App;
let blocker: TestUser;
let blocked: TestUser;
beforeAll(async () => {
  app = await startTestApp();
  [blocker, blocked] = await Promise.all([registerUser(app, { displayName: 'The Blocker' }), registerUser(app)]);
  await gql(app, BLOCK_USER, { userId: blocked.id }, { token: blocker.accessToken });
});
afterAll(() => app?.stop());

const search = async (user: TestUser, q: string) =>
  ((await gql(app, SEARCH, { q }, { token: user.accessToken })).data?.searchUsers.edges ?? []).map((e: any) => e.node) as Array<{
    id: string;
    username: string;
    displayName: string;
  }>;

/** What an error looks like to the client, minus the id it names. */
const answerShape = (result: { errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }, id: string) =>
  result.errors?.map((error) => JSON.parse(JSON.stringify({ ...error, locations: undefined }).replaceAll(id, '<id>')));

describe('searchUsers', () => {
  it('takes % and _ literally: "%" no longer lists everyone', async () => {
    const stem = uniqueName('pct');
    const percent = await registerUser(app, { displayName: `50% off ${stem}` });
    const underscore = await registerUser(app, { displayName: `snake_case ${stem}` });
    await registerUser(app, { displayName: `plain ${stem}` });
    const all = await search(blocked, '%');
    expect(all.every((user) => user.displayName.includes('%'))).toBe(true);
    expect(all.map((u) => u.id)).toContain(percent.id);
    expect((await search(blocked, `% off ${stem}`)).map((u) => u.id)).toEqual([percent.id]);
    const underscores = await search(blocked, `_case ${stem}`);
    expect(underscores.map((u) => u.id)).toEqual([underscore.id]);
    expect((await search(blocked, 'e_c')).every((user) => user.displayName.toLowerCase().includes('e_c') || user.username.startsWith('e_c'))).toBe(true);
    expect(await search(blocked, '\\')).toEqual([]);
  });

  it('hides the blocker from the one they blocked, not the other way round', async () => {
    expect((await search(blocked, blocker.username)).map((u) => u.id)).toEqual([]);
    expect((await search(blocked, 'The Blocker')).map((u) => u.id)).not.toContain(blocker.id);
    expect((await search(blocker, blocked.username)).map((u) => u.id)).toEqual([blocked.id]);
    const stranger = await registerUser(app);
    expect((await search(stranger, blocker.username)).map((u) => u.id)).toEqual([blocker.id]);
  });
});

describe('a blocked user cannot add the blocker', () => {
  it('to a new group: answered as for an unknown user', async () => {
    const attack = await gql(app, CREATE_CHAT, { input: { kind: 'GROUP', title: 'Trap', memberIds: [blocker.id] } }, { token: blocked.accessToken });
    expect(attack.data?.createChat ?? null).toBeNull();
    const unknownId = randomUUID();
    const unknown = await gql(app, CREATE_CHAT, { input: { kind: 'GROUP', title: 'Trap', memberIds: [unknownId] } }, { token: blocked.accessToken });
    expect(answerShape(attack, blocker.id)).toEqual(answerShape(unknown, unknownId));
    expect(await app.services.prisma.chatMember.count({ where: { userId: blocker.id, chat: { title: 'Trap' } } })).toBe(0);
  });

  it('to an existing group', async () => {
    const chatId = await createChat(app, blocked, { kind: 'GROUP', title: 'Later', memberIds: [] });
    const attack = await gql(app, ADD_CHAT_MEMBERS, { chatId, userIds: [blocker.id] }, { token: blocked.accessToken });
    const unknownId = randomUUID();
    const unknown = await gql(app, ADD_CHAT_MEMBERS, { chatId, userIds: [unknownId] }, { token: blocked.accessToken });
    expect(attack.errors?.[0]?.extensions?.code).toBeTruthy();
    expect(answerShape(attack, blocker.id)).toEqual(answerShape(unknown, unknownId));
    expect(await app.services.prisma.chatMember.count({ where: { chatId, userId: blocker.id } })).toBe(0);
  });

  it('to their contacts: NOT_FOUND, as for nobody', async () => {
    const attack = await gql(app, ADD_CONTACT, { userId: blocker.id }, { token: blocked.accessToken });
    const unknownId = randomUUID();
    const unknown = await gql(app, ADD_CONTACT, { userId: unknownId }, { token: blocked.accessToken });
    expect(attack.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(answerShape(attack, blocker.id)).toEqual(answerShape(unknown, unknownId));
    expect(await app.services.prisma.contact.count({ where: { ownerId: blocked.id, userId: blocker.id } })).toBe(0);
  });

  it('while the blocker can still add them, and others can add the blocker', async () => {
    expect((await gql(app, ADD_CONTACT, { userId: blocked.id }, { token: blocker.accessToken })).data?.addContact.id).toBe(blocked.id);
    const other = await registerUser(app);
    const chatId = await createChat(app, other, { kind: 'GROUP', title: 'Fine', memberIds: [blocker.id, blocked.id] });
    expect(await app.services.prisma.chatMember.count({ where: { chatId } })).toBe(3);
  });
});
