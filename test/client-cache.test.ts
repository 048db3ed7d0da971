// @kocmoc/client's cache configuration against the real API: Apollo Client 4 with the exported
// typePolicies and urql's Graphcache with the exported keys and relayPagination page a chat's
// messages backwards into one list, normalise a member's role change by ChatMember.id, and print
// no cache warning; a message event over graphql-ws lands in both caches. The urql client also
// refreshes an expired access token and retries once.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// Apollo's development mode, where it prints its cache warnings (what --conditions=development
// selects); hoisted above the imports, since Apollo reads it once, as it loads.
vi.hoisted(() => Object.assign(globalThis, { __DEV__: true }));

import { ApolloClient, ApolloLink, gql as apolloGql, HttpLink, InMemoryCache } from '@apollo/client';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient as createWsClient } from 'graphql-ws';
import { kocmocTypePolicies } from '@kocmoc/client/apollo';
import { ChatPageQuery, createKocmocClient, SetChatMemberRoleMutation } from '@kocmoc/client';
import { gql as urqlGql } from '@urql/core';
import { decodeJwt } from 'jose';
import { WebSocket } from 'ws';
import type { App } from '../src/server/app.ts';
import { createChat, gql, registerUser, sendText, startSocketTestApp, type TestUser } from './support/helpers.ts';
import { settle } from './support/ws-helpers.ts';

const CHAT_PAGE = `query ChatPage($id: ID!, $before: String) {
  chat(id: $id) {
    id
    members(first: 10) { edges { cursor node { id role user { id } } } pageInfo { hasNextPage endCursor } }
    messages(last: 2, before: $before) { edges { cursor node { id text } } pageInfo { hasPreviousPage startCursor } }
  }
}`;
const PROMOTE = `mutation Promote($c: ID!, $u: ID!) { setChatMemberRole(chatId: $c, userId: $u, role: ADMIN) { id members(first: 10) { edges { cursor node { id role } } } } }`;

let app: App;
let url: string;
let owner: TestUser;
let member: TestUser;
let chatId: string;
const warnings: unknown[][] = [];
const inProcess = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => app.yoga.fetch(new Request(input, init));

beforeAll(async () => {
  loadDevMessages();
  loadErrorMessages();
  ({ app, url } = await startSocketTestApp({ PUSH_ENABLED: 'false' }));
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

describe('Apollo Client 4 without them (the control)', () => {
  it('warns that replacing the paged field loses cache data', async () => {
    const client = new ApolloClient({
      cache: new InMemoryCache(),
      link: new HttpLink({ uri: 'http://kocmoc.test/graphql', fetch: inProcess, headers: { authorization: `Bearer ${owner.accessToken}` } }),
    });
    await client.query({ query: apolloGql(CHAT_PAGE), variables: { id: chatId } });
    // The mutation's answer replaces Chat.members, a connection object without an id.
    await client.mutate({ mutation: apolloGql(PROMOTE.replace('ADMIN', 'MEMBER')), variables: { c: chatId, u: member.id } });
    const printed = warnings.splice(0);
    expect(printed).toContainEqual(expect.arrayContaining([expect.stringMatching(/^Cache data may be lost when replacing the %s field of a %s object/), 'members', 'Chat']));
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

const MESSAGE_EVENTS = `subscription Edits($c: ID!) { messageEvents(chatId: $c) { type message { id text editedAt } } }`;

/** Edits the newest message once the subscription has had time to start, and answers its new text. */
async function editNewest(messageId: string, text: string) {
  await settle();
  const edited = await gql(app, 'mutation ($id: ID!, $t: String!) { editMessage(id: $id, text: $t) { id } }', { id: messageId, t: text }, { token: owner.accessToken });
  expect(edited.errors).toBeUndefined();
}

describe('a subscription event lands in the cache', () => {
  it('urql: the edited message reads edited from the cache', async () => {
    const client = createKocmocClient({ url, webSocketImpl: WebSocket, getAccessToken: () => owner.accessToken });
    const query = urqlGql(CHAT_PAGE);
    const page = await client.query(query, { id: chatId }).toPromise();
    const newest = page.data.chat.messages.edges.at(-1).node;
    const received = new Promise<unknown>((resolve) => {
      const { unsubscribe } = client.subscription(urqlGql(MESSAGE_EVENTS), { c: chatId }).subscribe((result) => {
        if (result.data?.messageEvents?.type === 'EDITED') {
          unsubscribe();
          resolve(result.data);
        }
      });
    });
    await editNewest(newest.id, 'four, as urql sees it');
    await received;
    const cached = await client.query(query, { id: chatId }, { requestPolicy: 'cache-only' }).toPromise();
    expect(texts(cached.data.chat).at(-1)).toBe('four, as urql sees it');
  });

  it('Apollo (GraphQLWsLink): the edited message reads edited from the cache', async () => {
    const ws = createWsClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${owner.accessToken}` } });
    const http = new HttpLink({ uri: 'http://kocmoc.test/graphql', fetch: inProcess, headers: { authorization: `Bearer ${owner.accessToken}` } });
    const isSubscription = ({ query }: ApolloLink.Operation) => query.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'subscription');
    const client = new ApolloClient({ cache: new InMemoryCache({ typePolicies: kocmocTypePolicies }), link: ApolloLink.split(isSubscription, new GraphQLWsLink(ws), http) });
    try {
      const query = apolloGql(CHAT_PAGE);
      const page = (await client.query({ query, variables: { id: chatId } })).data as any;
      const newest = page.chat.messages.edges.at(-1).node;
      const received = new Promise<void>((resolve) => {
        const subscription = client.subscribe({ query: apolloGql(MESSAGE_EVENTS), variables: { c: chatId } }).subscribe((result) => {
          if ((result.data as any)?.messageEvents?.type === 'EDITED') {
            subscription.unsubscribe();
            resolve();
          }
        });
      });
      await editNewest(newest.id, 'four, as Apollo sees it');
      await received;
      const cached = client.cache.readQuery({ query, variables: { id: chatId } }) as any;
      expect(texts(cached.chat).at(-1)).toBe('four, as Apollo sees it');
    } finally {
      await ws.dispose();
    }
  });
});

describe('the typed documents', () => {
  it('run against the API, typed end to end', async () => {
    const client = createKocmocClient({ url: 'http://kocmoc.test/graphql', fetch: inProcess, webSocketImpl: WebSocket, getAccessToken: () => owner.accessToken });
    const page = await client.query(ChatPageQuery, { id: chatId, last: 2 }).toPromise();
    expect(page.error).toBeUndefined();
    const last: string | null | undefined = page.data?.chat?.messages.edges.at(-1)?.node.text;
    expect(last).toMatch(/^four/);
    const promoted = await client.mutation(SetChatMemberRoleMutation, { chatId, userId: member.id, role: 'ADMIN' }).toPromise();
    expect(promoted.data?.setChatMemberRole.members.edges.map((edge) => edge.node.role).sort()).toEqual(['ADMIN', 'OWNER']);
  });
});
