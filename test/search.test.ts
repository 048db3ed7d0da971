import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { normalise } from '../src/messages/search-index.ts';
import { SEARCH_PLAN, searchMessages, type SearchPlan } from '../src/messages/search.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, type TestUser } from './support/helpers.ts';
import { DELETE_MESSAGE, LEAVE_CHAT } from './support/operations.ts';
import { addDevice, fetchBundles } from './support/devices.ts';
import { encryptFor, startSession } from './support/e2e-client.ts';

const SEARCH = `query ($q: String!, $chatId: ID, $first: Int, $after: String) {
  searchMessages(query: $q, chatId: $chatId, first: $first, after: $after) {
    edges { cursor node { id text chat { id } sender { id } } highlight { snippet ranges { start length } } }
    pageInfo { hasNextPage endCursor } } }`;
const EDIT = `mutation ($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id text } }`;

const firstKey = randomBytes(32).toString('base64');
let app: App;
let alice: TestUser;
let bob: TestUser;
let stranger: TestUser;
let group: string;
const queries: string[] = [];

beforeAll(async () => {
  app = await startTestApp({ MESSAGE_ENCRYPTION_KEY: firstKey }, { onQuery: (sql) => queries.push(sql), notifications: { relayIntervalMs: 600_000 } });
  [alice, bob, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Search', memberIds: [bob.id] });
});
afterAll(async () => {
  await app?.stop();
});

async function search(user: TestUser, q: string, extra: Record<string, unknown> = {}, on = app) {
  const result = await gql(on, SEARCH, { q, ...extra }, { token: user.accessToken });
  if (result.errors) return { error: codeOf(result), ids: [] as string[], edges: [] as any[], pageInfo: null };
  const { edges, pageInfo } = result.data.searchMessages;
  return { error: undefined, ids: edges.map((edge: any) => edge.node.id) as string[], edges, pageInfo };
}

/** A word no other test sends, so results are this test's alone. */
const unique = (stem: string) => `${stem}${randomBytes(3).toString('hex').replace(/\d/g, (d) => 'qrstuvwxyz'[Number(d)]!)}`;

describe('searchMessages', () => {
  it('ignores case, accents and compatibility forms, and highlights the phrase', async () => {
    const word = unique('crème');
    const sent = await sendText(app, alice, group, `Order the ${word} Brûlée at the CAFÉ, please`);
    for (const query of [`${word.replace('è', 'e')} brulee`, `${word.toUpperCase()} BRÛLÉE`, 'ｃａｆé']) {
      const { ids, edges } = await search(bob, query);
      expect(ids, query).toContain(sent.id);
      const edge = edges.find((e: any) => e.node.id === sent.id);
      const { snippet, ranges } = edge.highlight;
      expect(ranges.length, query).toBeGreaterThan(0);
      const marked = snippet.slice(ranges[0].start, ranges[0].start + ranges[0].length);
      expect(normalise(marked), query).toBe(normalise(query));
    }
  });

  it('finds word prefixes of 3+ letters in the last word, and checks the phrase after decryption', async () => {
    const word = unique('zebra');
    const sent = await sendText(app, alice, group, `the ${word} crossing ahead`);
    expect((await search(bob, word.slice(0, 3))).ids).toContain(sent.id);
    expect((await search(bob, `${word} cro`)).ids).toContain(sent.id);
    // Two letters are not a prefix: only whole two-letter words match them.
    expect((await search(bob, word.slice(0, 2))).ids).not.toContain(sent.id);
    // Every token matches, but the words are not in this order.
    expect((await search(bob, `crossing ${word}`)).ids).toEqual([]);
    // Only the last word may be a prefix.
    expect((await search(bob, `${word.slice(0, 4)} crossing`)).ids).toEqual([]);
  });

  it('pages newest first with cursors', async () => {
    const word = unique('paging');
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await sendText(app, i % 2 ? bob : alice, group, `${word} number ${i}`));
    const first = await search(alice, word, { first: 2 });
    expect(first.ids).toEqual([sent[2]!.id, sent[1]!.id]);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = await search(alice, word, { first: 2, after: first.pageInfo.endCursor });
    expect(second.ids).toEqual([sent[0]!.id]);
    expect(second.pageInfo.hasNextPage).toBe(false);
    expect((await search(alice, word, { chatId: group, first: 1 })).ids).toEqual([sent[2]!.id]);
  });

  it('finds matches older than the newest 25 entries of each chat, and pages across that boundary', async () => {
    const word = unique('buried');
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Deep', memberIds: [bob.id] });
    const oldest = await sendText(app, alice, chat, `${word} oldest`);
    for (let i = 0; i < 30; i++) await sendText(app, bob, chat, `filler ${i}`);
    const middle = await sendText(app, alice, chat, `${word} middle`);
    for (let i = 0; i < 30; i++) await sendText(app, bob, chat, `more filler ${i}`);
    const newest = await sendText(app, alice, chat, `${word} newest`);
    expect((await search(bob, word)).ids).toEqual([newest.id, middle.id, oldest.id]);
    const first = await search(bob, word, { first: 1 });
    expect(first.ids).toEqual([newest.id]);
    const rest = await search(bob, word, { first: 1, after: first.pageInfo.endCursor });
    expect(rest.ids).toEqual([middle.id]);
    expect(rest.pageInfo.hasNextPage).toBe(true);
    const last = await search(bob, word, { first: 5, after: rest.pageInfo.endCursor });
    expect(last.ids).toEqual([oldest.id]);
    expect(last.pageInfo.hasNextPage).toBe(false);
  });

  it('gives the same pages whichever way it looks: window rounds, the GIN probe, a probe over its cap', async () => {
    const word = unique('planned');
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Plans', memberIds: [bob.id] });
    const matches = [];
    for (let i = 0; i < 8; i++) {
      matches.push(await sendText(app, alice, chat, `${word} ${i}`));
      for (let j = 0; j < 5; j++) await sendText(app, bob, chat, `filler ${i} ${j}`);
    }
    const plans: SearchPlan[] = [
      SEARCH_PLAN,
      { firstProbeCap: 0, probeAfterRounds: 0, probeCap: 1_000, windowRounds: 4 },
      { firstProbeCap: 0, probeAfterRounds: 1, probeCap: 2, windowRounds: 4 },
      { firstProbeCap: 0, probeAfterRounds: 0, probeCap: 2, windowRounds: 0 },
      { firstProbeCap: 0, probeAfterRounds: 4, probeCap: 0, windowRounds: 4 },
      { firstProbeCap: 2, probeAfterRounds: 1, probeCap: 4, windowRounds: 4 },
      { firstProbeCap: 100, probeAfterRounds: 0, probeCap: 0, windowRounds: 0 },
    ];
    for (const plan of plans) {
      const ids: string[] = [];
      let after: string | null = null;
      for (let pages = 0; pages < 5; pages++) {
        const page = await searchMessages(app.services, bob.id, { query: word, first: 3, after }, plan);
        ids.push(...page.hits.map((hit) => hit.message.id));
        expect(page.hasNextPage, JSON.stringify(plan)).toBe(ids.length < matches.length);
        if (!page.hasNextPage) break;
        after = page.hits.at(-1)!.cursor;
      }
      expect(ids, JSON.stringify(plan)).toEqual(matches.map((m) => m.id).reverse());
    }
  });

  it('reads a page of results with their senders and chats in a bounded number of queries', async () => {
    const word = unique('bounded');
    const people = [alice, bob];
    for (let i = 0; i < 30; i++) await sendText(app, people[i % 2]!, group, `${word} ${i}`);
    const count = async (first: number) => {
      await app.notifications.whenIdle();
      queries.length = 0;
      const { ids } = await search(alice, word, { first });
      expect(ids).toHaveLength(first);
      return queries.length;
    };
    const small = await count(2);
    expect(await count(20)).toBe(small);
    expect(small).toBeLessThanOrEqual(8);
  });

  it('finds nothing in chats the viewer left or never joined', async () => {
    const word = unique('secret');
    const carol = await registerUser(app);
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Leaving', memberIds: [carol.id] });
    const sent = await sendText(app, alice, chat, `the ${word} plan`);
    expect((await search(carol, word)).ids).toEqual([sent.id]);
    expect((await gql(app, LEAVE_CHAT, { chatId: chat }, { token: carol.accessToken })).errors).toBeUndefined();
    expect((await search(carol, word)).ids).toEqual([]);
    expect((await search(stranger, word)).ids).toEqual([]);
    expect((await search(stranger, word, { chatId: chat })).error).toBe('NOT_FOUND');
    expect((await search(carol, word, { chatId: chat })).error).toBe('NOT_FOUND');
  });

  it('follows edits and deletes: old text and deleted messages leave the index', async () => {
    const before = unique('before');
    const after = unique('after');
    const sent = await sendText(app, alice, group, `text ${before}`);
    expect((await search(bob, before)).ids).toEqual([sent.id]);
    expect((await gql(app, EDIT, { id: sent.id, text: `text ${after}` }, { token: alice.accessToken })).errors).toBeUndefined();
    expect((await search(bob, before)).ids).toEqual([]);
    expect((await search(bob, after)).ids).toEqual([sent.id]);
    expect((await gql(app, DELETE_MESSAGE, { id: sent.id }, { token: alice.accessToken })).errors).toBeUndefined();
    expect((await search(bob, after)).ids).toEqual([]);
    expect(await app.services.prisma.messageSearch.count({ where: { messageId: sent.id } })).toBe(0);
  });

  it('stores keyed tokens only: no plaintext word, and equal words in two chats give unrelated tokens', async () => {
    const word = unique('plaintextprobe');
    const other = await createChat(app, alice, { kind: 'GROUP', title: 'Other', memberIds: [] });
    const [here, there] = [await sendText(app, alice, group, `hello ${word}`), await sendText(app, alice, other, `hello ${word}`)];
    const rows = await app.services.prisma.$queryRaw<Array<{ messageId: string; tokens: Uint8Array[] }>>`
      SELECT "messageId", "tokens" FROM "MessageSearch" WHERE "messageId" IN (${here.id}, ${there.id})`;
    expect(rows).toHaveLength(2);
    const plaintext = ['hello', 'hel', 'hell', word, word.slice(0, 5)].map((w) => Buffer.from(w));
    for (const row of rows) {
      // hel, hell, hello + the prefixes of the probe word (20 letters) from 3 letters on.
      expect(row.tokens.length).toBe(3 + word.length - 2);
      for (const token of row.tokens) {
        expect(token.byteLength).toBe(16);
        for (const bytes of plaintext) expect(Buffer.from(token).includes(bytes)).toBe(false);
      }
    }
    const [a, b] = rows.map((row) => new Set(row.tokens.map((t) => Buffer.from(t).toString('hex'))));
    expect([...a!].filter((token) => b!.has(token))).toEqual([]);
    const raw = await app.services.prisma.$queryRaw<Array<{ dump: string }>>`
      SELECT string_agg(s::text, ' ') AS dump FROM "MessageSearch" s WHERE "messageId" IN (${here.id}, ${there.id})`;
    expect(raw[0]!.dump).not.toContain(word);
    expect(raw[0]!.dump).not.toContain(Buffer.from(word).toString('hex'));
  });

  it('refuses empty queries and backward paging', async () => {
    expect((await search(alice, ' ,.! ')).error).toBe('BAD_USER_INPUT');
    expect((await search(alice, 'x'.repeat(201))).error).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, '{ searchMessages(query: "abc", last: 2) { edges { cursor } } }', {}, { token: alice.accessToken }))).toBe(
      'BAD_USER_INPUT',
    );
    expect((await search(alice, 'abc', { after: 'bm9wZQ' })).error).toBe('BAD_USER_INPUT');
    expect((await search(alice, 'abc', { first: 101 })).error).toBe('BAD_USER_INPUT');
  });

  it('still finds messages indexed under a rotated-out key, and indexes new ones under the new key', async () => {
    const word = unique('rotation');
    const old = await sendText(app, alice, group, `${word} one`);
    // No re-index here: it would move the first app's entries to a key that app does not know.
    const rotated = await startTestApp({ MESSAGE_ENCRYPTION_KEY: randomBytes(32).toString('base64'), MESSAGE_ENCRYPTION_OLD_KEYS: firstKey, SEARCH_REINDEX_ENABLED: 'false' });
    try {
      const fresh = await sendText(rotated, alice, group, `${word} two`);
      expect((await search(bob, word, {}, rotated)).ids).toEqual([fresh.id, old.id]);
      // The first app knows only the old key: the new message's tokens mean nothing to it.
      expect((await search(bob, word)).ids).toEqual([old.id]);
    } finally {
      await rotated.stop();
    }
  });

  it('does not search end-to-end encrypted chats: searchMessages(chatId:) of one you are in is empty, and a global search has no hit from it', async () => {
    const word = unique('sealed');
    const create = await gql(app, `mutation ($input: CreateChatInput!) { createChat(input: $input) { id encrypted } }`, { input: { kind: 'DIRECT', memberIds: [bob.id], encrypted: true } }, { token: alice.accessToken });
    const secret = create.data.createChat.id as string;
    expect(create.data.createChat.encrypted).toBe(true);
    const [phone, bobPhone] = [await addDevice(app, alice), await addDevice(app, bob)];
    const [bundle] = await fetchBundles(app, phone.token, bob.id, [bobPhone.id]);
    startSession(phone, bundle!);
    const sent = await gql(app, `mutation ($input: SendEncryptedMessageInput!) { sendEncryptedMessage(input: $input) { id } }`,
      { input: { chatId: secret, kind: 'TEXT', envelopes: [encryptFor(phone, bobPhone.id, `${word} at noon`)] } }, { token: phone.token });
    expect(sent.errors).toBeUndefined();
    const plain = await sendText(app, alice, group, `${word} in the open`);

    // In the chat: no error (it is yours), but no result; the server holds no index of it.
    for (const user of [alice, bob]) {
      const inChat = await search(user, word, { chatId: secret });
      expect(inChat.error).toBeUndefined();
      expect(inChat.ids).toEqual([]);
      expect(inChat.pageInfo).toMatchObject({ hasNextPage: false });
      // Global: the plaintext chat's message only.
      const global = await search(user, word);
      expect(global.ids).toEqual([plain.id]);
      expect(global.edges.every((edge: any) => edge.node.chat.id !== secret)).toBe(true);
    }
    expect(await app.services.prisma.messageSearch.count({ where: { chatId: secret } })).toBe(0);
    // Not a member: as unknown as a missing chat.
    expect((await search(stranger, word, { chatId: secret })).error).toBe('NOT_FOUND');
  });

  it('indexes nothing with SEARCH_INDEX_ENABLED=false', async () => {
    const off = await startTestApp({ MESSAGE_ENCRYPTION_KEY: firstKey, SEARCH_INDEX_ENABLED: 'false' });
    try {
      const sent = await sendText(off, alice, group, `${unique('unindexed')} words`);
      expect(await app.services.prisma.messageSearch.count({ where: { messageId: sent.id } })).toBe(0);
    } finally {
      await off.stop();
    }
  });
});
