import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, gql, registerUser, startTestApp, uniqueName, type TestUser } from './support/helpers.ts';

const UPDATE = `mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { id displayName bio avatarUrl } }`;
const SEARCH = `query ($q: String!, $first: Int, $after: String) {
  searchUsers(query: $q, first: $first, after: $after) { edges { cursor node { id username } } pageInfo { hasNextPage endCursor } }
}`;

let app: App;
let viewer: TestUser;
beforeAll(async () => {
  app = await startTestApp();
  viewer = await registerUser(app);
});
afterAll(async () => {
  await app?.stop();
});

describe('profile', () => {
  it('updates, keeps omitted fields, and clears with null', async () => {
    const set = await gql(app, UPDATE, { input: { displayName: ' Grace ', bio: 'Compilers.' } }, { token: viewer.accessToken });
    expect(set.data.updateProfile).toMatchObject({ displayName: 'Grace', bio: 'Compilers.', avatarUrl: null });

    const partial = await gql(app, UPDATE, { input: { bio: null } }, { token: viewer.accessToken });
    expect(partial.data.updateProfile).toMatchObject({ displayName: 'Grace', bio: null });

    const kept = await gql(app, UPDATE, { input: { displayName: null } }, { token: viewer.accessToken });
    expect(kept.data.updateProfile).toMatchObject({ displayName: 'Grace', bio: null });
  });

  it.each([
    [{ displayName: '' }, 'input.displayName'],
    [{ displayName: 'x'.repeat(65) }, 'input.displayName'],
    [{ bio: 'x'.repeat(501) }, 'input.bio'],
    [{ avatarUrl: 'javascript:alert(1)' }, 'input.avatarUrl'],
    [{ avatarUrl: 'not a url' }, 'input.avatarUrl'],
  ])('refuses %j with BAD_USER_INPUT', async (input, field) => {
    const result = await gql(app, UPDATE, { input }, { token: viewer.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('requires sign-in', async () => {
    expect(codeOf(await gql(app, UPDATE, { input: { bio: 'x' } }))).toBe('UNAUTHENTICATED');
  });

  it('keeps the chosen status (shown to others only while connected); OFFLINE records lastSeenAt', async () => {
    const busy = await gql(app, `mutation { setStatus(status: BUSY) { status chosenStatus } }`, {}, { token: viewer.accessToken });
    // No live WebSocket: others see OFFLINE until one connects (see realtime tests).
    expect(busy.data.setStatus).toEqual({ status: 'OFFLINE', chosenStatus: 'BUSY' });
    const other = await registerUser(app);
    const seen = await gql(app, `query ($id: ID!) { user(id: $id) { chosenStatus } }`, { id: viewer.id }, { token: other.accessToken });
    expect(seen.data.user.chosenStatus).toBeNull();
    const off = await gql(app, `mutation { setStatus(status: OFFLINE) { chosenStatus lastSeenAt } }`, {}, { token: viewer.accessToken });
    expect(off.data.setStatus.chosenStatus).toBe('OFFLINE');
    expect(Date.now() - new Date(off.data.setStatus.lastSeenAt).getTime()).toBeLessThan(60_000);
    const bad = await gql(app, `mutation { setStatus(status: SLEEPING) { status } }`, {}, { token: viewer.accessToken });
    expect(bad.errors?.[0]?.message).toMatch(/SLEEPING/);
  });
});

describe('user', () => {
  it('is null for an unknown id and requires sign-in', async () => {
    const missing = await gql(app, `{ user(id: "nope") { id } }`, {}, { token: viewer.accessToken });
    expect(missing.errors).toBeUndefined();
    expect(missing.data.user).toBeNull();
    expect(codeOf(await gql(app, `query ($id: ID!) { user(id: $id) { id } }`, { id: viewer.id }))).toBe('UNAUTHENTICATED');
  });
});

describe('searchUsers', () => {
  it('pages through every match once, in username order', async () => {
    const prefix = uniqueName('s');
    const names = await Promise.all([3, 1, 4, 0, 2].map((n) => registerUser(app, { username: `${prefix}_${n}` }).then((u) => u.username)));
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: any = await gql(app, SEARCH, { q: prefix, first: 2, after }, { token: viewer.accessToken });
      expect(result.errors).toBeUndefined();
      const conn = result.data.searchUsers;
      seen.push(...conn.edges.map((e: any) => e.node.username));
      expect(conn.edges.length).toBeLessThanOrEqual(2);
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(seen).toEqual([...names].sort());
  });

  it('matches display names case-insensitively', async () => {
    const marker = uniqueName('Zq');
    const user = await registerUser(app, { displayName: `Dr ${marker} Who` });
    const result = await gql(app, SEARCH, { q: marker.toLowerCase() }, { token: viewer.accessToken });
    expect(result.data.searchUsers.edges.map((e: any) => e.node.id)).toEqual([user.id]);
  });

  it('refuses an empty query, oversized pages and anonymous callers', async () => {
    expect(codeOf(await gql(app, SEARCH, { q: '  ' }, { token: viewer.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, SEARCH, { q: 'a' }))).toBe('UNAUTHENTICATED');
    const huge = await gql(app, SEARCH, { q: 'a', first: 1000 }, { token: viewer.accessToken });
    expect(codeOf(huge)).toBe('BAD_USER_INPUT');
    expect(huge.errors?.[0]?.extensions?.field).toBe('first');
  });
});
