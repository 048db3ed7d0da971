// @kocmoc/client's cache configuration against the real API: Apollo Client 4 with the exported
// typePolicies and urql's Graphcache with the exported keys and relayPagination page a chat's
// messages backwards into one list, normalise a member's role change by ChatMember.id, and print
// no cache warning. The urql client also refreshes an expired access token and retries once.
import { ApolloClient, gql as apolloGql, HttpLink, InMemoryCache } from '@apollo/client';
import { kocmocTypePolicies } from '@kocmoc/client/apollo';
import { createKocmocClient } from '@kocmoc/client';
import { gql as urqlGql } from '@urql/core';
import { decodeJwt } from 'jose';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { createChat, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';

const CHAT_PAGE = `query ChatPage($id: ID!, $before: String) {
  chat(id: $id) {
    id
    members(first: 10) { edges { cursor node { id role user { id } } } pageInfo { hasNextPage endCursor } }
    messages(last: 2, before: $before) { edges { cursor node { id text } } pageInfo { hasPreviousPage startCursor } }
  }
}`;
const PROMOTE = `mutation Promote($c: ID!, $u: ID!) { setChatMemberRole(chatId: $c, userId: $u, role: ADMIN) { id members(first: 10) { edges { cursor node { id role } } } } }`;

let app: App;
let owner: TestUser;
let member: TestUser;
let chatId: string;
const warnings: unknown[][] = [];
const inProcess = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => app.yoga.fetch(new Request(input, init));

beforeAll(async () => {
  app = await startTestApp({ PUSH_ENABLED: 'false' });
  [owner, member] = await Promise.all([registerUser(app), registerUser(app)]);
  chatId = await createChat(app, owner, { kind: 'GROUP', title: 'Cached', memberIds: [member.id] });
  for (const text of ['one', 'two', 'three', 'four']) await sendText(app, owner, chatId, text);
  vi.spyOn(console, 'warn').mockImplementation((...args) => void warnings.push(args));
  vi.spyOn(console, 'error').mockImplementation((...args) => void warnings.push(args));
});
afterEach(() => {
  expect(warnings).toEqual([]);
});
afterAll(async () => {
  vi.restoreAllMocks();
  await app?.stop();
});

const texts = (chat: { messages: { edges: Array<{ node: { text: string } }> } }) => chat.messages.edges.map((edge) => edge.node.text);
const roleOf = (chat: { members: { edges: Array<{ node: { role: string; user?: { id: string } } }> } }, userId: string) =>
  chat.members.edges.find((edge) => edge.node.user?.id === userId)?.node.role;

describe('Apollo Client 4 with kocmocTypePolicies', () => {
  it('pages messages back into one list and normalises a role change', async () => {
    const client = new ApolloClient({
      cache: new InMemoryCache({ typePolicies: kocmocTypePolicies }),
      link: new HttpLink({ uri: 'http://kocmoc.test/graphql', fetch: inProcess, headers: { authorization: `Bearer ${owner.accessToken}` } }),
    });
    const query = apolloGql(CHAT_PAGE);
    const first = await client.query({ query, variables: { id: chatId } });
    const newest = first.data as any;
    expect(texts(newest.chat)).toEqual(['three', 'four']);
    // The older page merges in front: the field reads as one list, in order, whatever page was asked.
    const older = await client.query({ query, variables: { id: chatId, before: newest.chat.messages.pageInfo.startCursor }, fetchPolicy: 'network-only' });
    expect(texts((older.data as any).chat)).toEqual(['one', 'two', 'three', 'four']);
    const merged = client.cache.readQuery({ query, variables: { id: chatId } }) as any;
    expect(texts(merged.chat)).toEqual(['one', 'two', 'three', 'four']);

    await client.mutate({ mutation: apolloGql(PROMOTE), variables: { c: chatId, u: member.id } });
    const after = client.cache.readQuery({ query, variables: { id: chatId } }) as any;
    expect(roleOf(after.chat, member.id)).toBe('ADMIN');
    await client.mutate({ mutation: apolloGql(PROMOTE.replace('ADMIN', 'MEMBER')), variables: { c: chatId, u: member.id } });
  });
});

describe('urql Graphcache with the exported keys and relayPagination', () => {
  it('pages messages back into one list and normalises a role change', async () => {
    const client = createKocmocClient({ url: 'http://kocmoc.test/graphql', fetch: inProcess, webSocketImpl: WebSocket, getAccessToken: () => owner.accessToken });
    const query = urqlGql(CHAT_PAGE);
    const newest = await client.query(query, { id: chatId }).toPromise();
    expect(newest.error).toBeUndefined();
    expect(texts(newest.data.chat)).toEqual(['three', 'four']);
    const older = await client.query(query, { id: chatId, before: newest.data.chat.messages.pageInfo.startCursor }).toPromise();
    expect(texts(older.data.chat)).toEqual(['one', 'two', 'three', 'four']);

    await client.mutation(urqlGql(PROMOTE), { c: chatId, u: member.id }).toPromise();
    const cached = await client.query(query, { id: chatId }, { requestPolicy: 'cache-only' }).toPromise();
    expect(roleOf(cached.data.chat, member.id)).toBe('ADMIN');
  });

  it('refreshes an expired access token once and retries', async () => {
    const { sub, sid } = decodeJwt(member.accessToken) as { sub: string; sid: string };
    const expired = (await app.services.tokens.issueAccessToken({ userId: sub, sessionId: sid }, new Date(Date.now() - 24 * 3600_000))).token;
    let token = expired;
    const refreshAccessToken = vi.fn(async () => (token = member.accessToken));
    const client = createKocmocClient({ url: 'http://kocmoc.test/graphql', fetch: inProcess, webSocketImpl: WebSocket, getAccessToken: () => token, refreshAccessToken });
    const me = await client.query(urqlGql('{ me { id } }'), {}).toPromise();
    expect(me.error).toBeUndefined();
    expect(me.data).toMatchObject({ me: { id: member.id } });
    expect(refreshAccessToken).toHaveBeenCalledTimes(1);
  });
});
