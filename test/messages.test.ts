import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, registerUser, sendText, startTestApp, uniqueName, type TestUser } from './support/helpers.ts';
import { MESSAGE_FIELDS } from './support/operations.ts';

const SEND = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { ${MESSAGE_FIELDS} attachment { id name kind } } }`;
const EDIT = `mutation ($id: ID!, $text: String!) { editMessage(id: $id, text: $text) { id text editedAt edits { text editedAt } } }`;
const DELETE = `mutation ($id: ID!) { deleteMessage(id: $id) { id seq kind text location { latitude } attachment { id } deletedAt edits { text } } }`;
const MARK_READ = `mutation ($c: ID!, $m: ID!) { markRead(chatId: $c, messageId: $m) { unreadCount lastReadMessageId } }`;
const PAGE = `query ($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  chat(id: $id) { messages(first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id seq text } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`;

let app: App;
const queries: string[] = [];
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let stranger: TestUser;
let group: string;

beforeAll(async () => {
  app = await startTestApp({}, { onQuery: (sql) => queries.push(sql), notifications: { relayIntervalMs: 600_000 } });
  [alice, bob, carol, stranger] = await Promise.all([registerUser(app), registerUser(app), registerUser(app), registerUser(app)]);
  group = await createChat(app, alice, { kind: 'GROUP', title: 'Messages', memberIds: [bob.id, carol.id] });
});
afterAll(async () => {
  await app?.stop();
});

const send = (user: TestUser, input: Record<string, unknown>) => gql(app, SEND, { input: { chatId: group, ...input } }, { token: user.accessToken });

async function uploadedAttachment(owner: TestUser, kind: 'IMAGE' | 'FILE' | 'VOICE' | null, name = 'file.bin') {
  // Uploads arrive with the files feature; until then a row made here stands for one.
  return app.services.prisma.attachment.create({
    data: { uploaderId: owner.id, kind, name, mimeType: 'application/octet-stream', size: 3, storageKey: uniqueName('blob') },
  });
}

describe('sendMessage', () => {
  it('sends TEXT with a total, gap-free order', async () => {
    const first = await sendText(app, alice, group, 'hello');
    const second = await sendText(app, bob, group, 'hi there');
    expect(second.seq).toBe(first.seq + 1);
    expect(first).toMatchObject({ kind: 'TEXT', text: 'hello', sender: { id: alice.id }, deletedAt: null, editedAt: null });
  });

  it('sends LOCATION', async () => {
    const result = await send(alice, { kind: 'LOCATION', location: { latitude: 55.7558, longitude: 37.6173 } });
    expect(result.data.sendMessage).toMatchObject({ kind: 'LOCATION', text: null, location: { latitude: 55.7558, longitude: 37.6173 } });
  });

  it.each(['IMAGE', 'FILE', 'VOICE'] as const)('sends %s with its attachment and an optional caption', async (kind) => {
    const attachment = await uploadedAttachment(alice, kind, `${kind}.bin`);
    const result = await send(alice, { kind, attachmentId: attachment.id, text: kind === 'IMAGE' ? 'look' : undefined });
    expect(result.errors).toBeUndefined();
    expect(result.data.sendMessage).toMatchObject({ kind, attachment: { id: attachment.id, name: `${kind}.bin`, kind } });
    expect(result.data.sendMessage.text).toBe(kind === 'IMAGE' ? 'look' : null);
  });

  it('sends a FILE with any attachment', async () => {
    const attachment = await uploadedAttachment(alice, null);
    expect((await send(alice, { kind: 'FILE', attachmentId: attachment.id })).errors).toBeUndefined();
  });

  it('replies to a message of the same chat only', async () => {
    const original = await sendText(app, alice, group, 'question?');
    const reply = await send(bob, { kind: 'TEXT', text: 'answer', replyToId: original.id });
    expect(reply.data.sendMessage.replyTo).toEqual({ id: original.id });

    const elsewhere = await createChat(app, alice, { kind: 'GROUP', title: 'Elsewhere', memberIds: [] });
    const foreign = await sendText(app, alice, elsewhere, 'other chat');
    const bad = await send(alice, { kind: 'TEXT', text: 'x', replyToId: foreign.id });
    expect(codeOf(bad)).toBe('BAD_USER_INPUT');
    expect(bad.errors?.[0]?.extensions?.field).toBe('input.replyToId');
  });

  it.each([
    ['empty text', { kind: 'TEXT', text: '' }, 'input.text'],
    ['blank text', { kind: 'TEXT', text: ' \n ' }, 'input.text'],
    ['missing text', { kind: 'TEXT' }, 'input.text'],
    ['text over 4000 characters', { kind: 'TEXT', text: 'é'.repeat(4001) }, 'input.text'],
    ['latitude over 90', { kind: 'LOCATION', location: { latitude: 90.5, longitude: 0 } }, 'input.location.latitude'],
    ['longitude under -180', { kind: 'LOCATION', location: { latitude: 0, longitude: -181 } }, 'input.location.longitude'],
    ['missing location', { kind: 'LOCATION' }, 'input.location'],
    ['text on a location', { kind: 'LOCATION', text: 'x', location: { latitude: 0, longitude: 0 } }, 'input.text'],
    ['location on a text', { kind: 'TEXT', text: 'x', location: { latitude: 0, longitude: 0 } }, 'input.location'],
    ['attachment on a text', { kind: 'TEXT', text: 'x', attachmentId: 'a' }, 'input.attachmentId'],
    ['image without attachment', { kind: 'IMAGE' }, 'input.attachmentId'],
    ['unknown attachment', { kind: 'FILE', attachmentId: 'nope' }, 'input.attachmentId'],
    ['overlong clientMessageId', { kind: 'TEXT', text: 'x', clientMessageId: 'c'.repeat(65) }, 'input.clientMessageId'],
  ])('refuses %s with BAD_USER_INPUT', async (_case, input, field) => {
    const result = await send(alice, input);
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe(field);
  });

  it('accepts exactly 4000 characters', async () => {
    expect((await send(alice, { kind: 'TEXT', text: '😀'.repeat(4000) })).errors).toBeUndefined();
  });

  it("refuses someone else's attachment and a mismatched kind", async () => {
    const bobs = await uploadedAttachment(bob, 'IMAGE');
    expect(codeOf(await send(alice, { kind: 'IMAGE', attachmentId: bobs.id }))).toBe('BAD_USER_INPUT');
    const voice = await uploadedAttachment(alice, 'VOICE');
    expect(codeOf(await send(alice, { kind: 'IMAGE', attachmentId: voice.id }))).toBe('BAD_USER_INPUT');
    const image = await uploadedAttachment(alice, 'IMAGE');
    expect(codeOf(await send(alice, { kind: 'VOICE', attachmentId: image.id }))).toBe('BAD_USER_INPUT');
  });

  it('is idempotent per clientMessageId, even for concurrent retries', async () => {
    const clientMessageId = uniqueName('cmid');
    const before = await sendText(app, alice, group, 'before');
    const results = await Promise.all(Array.from({ length: 8 }, () => send(alice, { kind: 'TEXT', text: 'once', clientMessageId })));
    expect(results.map(codeOf)).toEqual(Array(8).fill(undefined));
    const ids = new Set(results.map((r) => r.data.sendMessage.id));
    expect(ids.size).toBe(1);
    expect(results[0]!.data.sendMessage).toMatchObject({ seq: before.seq + 1, clientMessageId, text: 'once' });
    expect(await app.services.prisma.message.count({ where: { senderId: alice.id, clientMessageId } })).toBe(1);
    // The failed racers took no position: the next message follows directly.
    expect((await sendText(app, alice, group, 'after')).seq).toBe(before.seq + 2);
    // The same clientMessageId from another sender is another message.
    const bobs = await send(bob, { kind: 'TEXT', text: 'mine', clientMessageId });
    expect(bobs.data.sendMessage.id).not.toBe(results[0]!.data.sendMessage.id);
  });

  it('refuses a clientMessageId already used in another chat with CONFLICT', async () => {
    const clientMessageId = uniqueName('cmid');
    await send(alice, { kind: 'TEXT', text: 'x', clientMessageId });
    const other = await createChat(app, alice, { kind: 'GROUP', title: 'Other', memberIds: [] });
    const reuse = await gql(app, SEND, { input: { chatId: other, kind: 'TEXT', text: 'x', clientMessageId } }, { token: alice.accessToken });
    expect(codeOf(reuse)).toBe('CONFLICT');
  });

  it('is NOT_FOUND for non-members and unknown chats', async () => {
    expect(codeOf(await send(stranger, { kind: 'TEXT', text: 'let me in' }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, SEND, { input: { chatId: 'nope', kind: 'TEXT', text: 'x' } }, { token: alice.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, SEND, { input: { chatId: group, kind: 'TEXT', text: 'x' } }))).toBe('UNAUTHENTICATED');
  });

  it('is FORBIDDEN into a direct chat across a block', async () => {
    const [x, y] = await Promise.all([registerUser(app), registerUser(app)]);
    const direct = await createChat(app, x, { kind: 'DIRECT', memberIds: [y.id] });
    await sendText(app, x, direct, 'before the block');
    await app.services.prisma.userBlock.create({ data: { blockerId: y.id, blockedId: x.id } });
    const result = await gql(app, SEND, { input: { chatId: direct, kind: 'TEXT', text: 'after' } }, { token: x.accessToken });
    expect(codeOf(result)).toBe('FORBIDDEN');
  });
});

describe('history', () => {
  it('pages forward with no gaps or repeats while others keep sending', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Busy', memberIds: [bob.id] });
    for (let i = 1; i <= 20; i++) await sendText(app, alice, chat, `m${i}`);
    const writer = (async () => {
      for (let i = 21; i <= 45; i++) await sendText(app, bob, chat, `m${i}`);
    })();
    const seqs: number[] = [];
    let after: string | null = null;
    for (let page = 0; page < 100; page++) {
      const result: any = await gql(app, PAGE, { id: chat, first: 4, after }, { token: alice.accessToken });
      const { edges, pageInfo } = result.data.chat.messages;
      seqs.push(...edges.map((e: any) => e.node.seq));
      if (edges.length) after = pageInfo.endCursor;
      if (!pageInfo.hasNextPage) {
        // Caught up with the writer? Keep polling until it is done.
        if (seqs.length >= 45) break;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    await writer;
    expect(seqs).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
  });

  it('pages backward from the newest with `last`/`before`', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Back', memberIds: [] });
    for (let i = 1; i <= 7; i++) await sendText(app, alice, chat, `b${i}`);
    const texts: string[] = [];
    let before: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: any = await gql(app, PAGE, { id: chat, last: 3, before }, { token: alice.accessToken });
      const { edges, pageInfo } = result.data.chat.messages;
      texts.unshift(...edges.map((e: any) => e.node.text));
      if (!pageInfo.hasPreviousPage) break;
      before = pageInfo.startCursor;
    }
    expect(texts).toEqual(['b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7']);
  });

  it('is hidden from non-members: the chat is null to them', async () => {
    const page = await gql(app, PAGE, { id: group, last: 5 }, { token: stranger.accessToken });
    expect(page.errors).toBeUndefined();
    expect(page.data.chat).toBeNull();
  });

  it('keeps deleted messages in place, and shows the newest as lastMessage', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Holes', memberIds: [bob.id] });
    const [a, b, c] = [await sendText(app, alice, chat, 'a'), await sendText(app, bob, chat, 'b'), await sendText(app, alice, chat, 'c')];
    await gql(app, DELETE, { id: b.id }, { token: bob.accessToken });
    const result = await gql(app, `query ($id: ID!) { chat(id: $id) { lastMessage { id text }
      messages(first: 10) { edges { node { id seq text deletedAt } } } } }`, { id: chat }, { token: alice.accessToken });
    const nodes = result.data.chat.messages.edges.map((e: any) => e.node);
    expect(nodes.map((n: any) => [n.id, n.seq, n.text])).toEqual([[a.id, 1, 'a'], [b.id, 2, null], [c.id, 3, 'c']]);
    expect(nodes[1].deletedAt).toBeTruthy();
    expect(result.data.chat.lastMessage).toEqual({ id: c.id, text: 'c' });
  });

  it('refuses malformed cursors with BAD_USER_INPUT', async () => {
    expect(codeOf(await gql(app, PAGE, { id: group, first: 5, after: 'garbage' }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });

  it('loads a page of 50 with sender, replyTo and text in a bounded number of queries', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'N+1', memberIds: [bob.id, carol.id] });
    let previous: string | undefined;
    for (let i = 0; i < 50; i++) {
      const sender = [alice, bob, carol][i % 3]!;
      previous = (await sendText(app, sender, chat, `n${i}`, previous ? { replyToId: previous } : {})).id;
    }
    const page = (last: number) =>
      gql(app, `query ($id: ID!, $last: Int) { chat(id: $id) { messages(last: $last) { edges { node {
        id text sender { id username } replyTo { id text sender { id } } readBy { id } } } } } }`, { id: chat, last }, { token: alice.accessToken });
    const count = async (last: number) => {
      await app.notifications.whenIdle(); // the sends' notification jobs query too
      queries.length = 0;
      const result = await page(last);
      expect(result.errors).toBeUndefined();
      expect(result.data.chat.messages.edges).toHaveLength(last);
      return queries.length;
    };
    const small = await count(5);
    const large = await count(50);
    expect(large).toBe(small);
    expect(large).toBeLessThanOrEqual(12);
  });
});

describe('editMessage', () => {
  it('lets the sender edit and keeps the history, oldest first', async () => {
    const message = await sendText(app, alice, group, 'v1');
    await gql(app, EDIT, { id: message.id, text: 'v2' }, { token: alice.accessToken });
    const result = await gql(app, EDIT, { id: message.id, text: 'v3' }, { token: alice.accessToken });
    expect(result.data.editMessage.text).toBe('v3');
    expect(result.data.editMessage.editedAt).toBeTruthy();
    expect(result.data.editMessage.edits.map((e: any) => e.text)).toEqual(['v1', 'v2']);
    // Same text again: no new history entry.
    const same = await gql(app, EDIT, { id: message.id, text: 'v3' }, { token: alice.accessToken });
    expect(same.data.editMessage.edits).toHaveLength(2);
  });

  it('keeps every version when edits race', async () => {
    const message = await sendText(app, alice, group, 'start');
    await Promise.all(['a', 'b', 'c', 'd'].map((text) => gql(app, EDIT, { id: message.id, text }, { token: alice.accessToken })));
    const final = await gql(app, `query ($id: ID!) { chat(id: $id) { lastMessage { id } } }`, { id: group }, { token: alice.accessToken });
    expect(final.errors).toBeUndefined();
    const row = await app.services.prisma.messageEdit.count({ where: { messageId: message.id } });
    expect(row).toBe(4);
  });

  it('refuses other members (FORBIDDEN), strangers (NOT_FOUND), blank text and deleted messages', async () => {
    const message = await sendText(app, alice, group, 'mine');
    expect(codeOf(await gql(app, EDIT, { id: message.id, text: 'x' }, { token: bob.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, EDIT, { id: message.id, text: 'x' }, { token: stranger.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, EDIT, { id: 'nope', text: 'x' }, { token: alice.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, EDIT, { id: message.id, text: '   ' }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    expect(codeOf(await gql(app, EDIT, { id: message.id, text: 'x'.repeat(4001) }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
    await gql(app, DELETE, { id: message.id }, { token: alice.accessToken });
    expect(codeOf(await gql(app, EDIT, { id: message.id, text: 'revive' }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });

  it('refuses to edit a location', async () => {
    const location = await send(alice, { kind: 'LOCATION', location: { latitude: 1, longitude: 2 } });
    expect(codeOf(await gql(app, EDIT, { id: location.data.sendMessage.id, text: 'x' }, { token: alice.accessToken }))).toBe('BAD_USER_INPUT');
  });
});

describe('deleteMessage', () => {
  it('erases the content and history but keeps the row and its position', async () => {
    const message = await sendText(app, alice, group, 'regret');
    await gql(app, EDIT, { id: message.id, text: 'regret more' }, { token: alice.accessToken });
    const result = await gql(app, DELETE, { id: message.id }, { token: alice.accessToken });
    expect(result.data.deleteMessage).toMatchObject({ id: message.id, seq: message.seq, kind: 'TEXT', text: null, edits: [] });
    expect(result.data.deleteMessage.deletedAt).toBeTruthy();
    const row = await app.services.prisma.message.findUniqueOrThrow({ where: { id: message.id } });
    expect(row.content).toBeNull();
    expect(await app.services.prisma.messageEdit.count({ where: { messageId: message.id } })).toBe(0);
    // Deleting again is harmless.
    expect((await gql(app, DELETE, { id: message.id }, { token: alice.accessToken })).errors).toBeUndefined();
  });

  it('lets group owners and admins delete anyone’s message, but not plain members', async () => {
    const bobs = await sendText(app, bob, group, 'spam');
    expect(codeOf(await gql(app, DELETE, { id: bobs.id }, { token: carol.accessToken }))).toBe('FORBIDDEN');
    expect(codeOf(await gql(app, DELETE, { id: bobs.id }, { token: stranger.accessToken }))).toBe('NOT_FOUND');
    expect((await gql(app, DELETE, { id: bobs.id }, { token: alice.accessToken })).data.deleteMessage.deletedAt).toBeTruthy();
  });

  it('removes the location and attachment of media messages', async () => {
    const location = await send(alice, { kind: 'LOCATION', location: { latitude: 1, longitude: 2 } });
    const deleted = await gql(app, DELETE, { id: location.data.sendMessage.id }, { token: alice.accessToken });
    expect(deleted.data.deleteMessage.location).toBeNull();
    const attachment = await uploadedAttachment(alice, 'FILE');
    const file = await send(alice, { kind: 'FILE', attachmentId: attachment.id });
    expect((await gql(app, DELETE, { id: file.data.sendMessage.id }, { token: alice.accessToken })).data.deleteMessage.attachment).toBeNull();
  });
});

describe('read state', () => {
  it('counts unread messages from others and never moves backwards', async () => {
    const chat = await createChat(app, alice, { kind: 'GROUP', title: 'Reads', memberIds: [bob.id, carol.id] });
    const m1 = await sendText(app, alice, chat, 'one');
    const m2 = await sendText(app, alice, chat, 'two');
    const m3 = await sendText(app, alice, chat, 'three');
    await sendText(app, bob, chat, 'own message does not count for bob');
    const unread = async (user: TestUser) =>
      (await gql(app, `query ($id: ID!) { chat(id: $id) { unreadCount lastReadMessageId } }`, { id: chat }, { token: user.accessToken })).data.chat;
    expect(await unread(bob)).toEqual({ unreadCount: 3, lastReadMessageId: null });

    expect((await gql(app, MARK_READ, { c: chat, m: m2.id }, { token: bob.accessToken })).data.markRead).toEqual({ unreadCount: 1, lastReadMessageId: m2.id });
    expect((await gql(app, MARK_READ, { c: chat, m: m1.id }, { token: bob.accessToken })).data.markRead).toEqual({ unreadCount: 1, lastReadMessageId: m2.id });
    await gql(app, DELETE, { id: m3.id }, { token: alice.accessToken });
    expect(await unread(bob)).toEqual({ unreadCount: 0, lastReadMessageId: m2.id });

    const readBy = await gql(app, `query ($id: ID!) { chat(id: $id) { messages(first: 2) { edges { node { readBy { id } } } } } }`, { id: chat }, { token: alice.accessToken });
    expect(readBy.data.chat.messages.edges.map((e: any) => e.node.readBy.map((u: any) => u.id))).toEqual([[bob.id], [bob.id]]);
  });

  it('refuses strangers and messages of other chats', async () => {
    const message = await sendText(app, alice, group, 'r');
    const other = await createChat(app, alice, { kind: 'GROUP', title: 'R2', memberIds: [] });
    expect(codeOf(await gql(app, MARK_READ, { c: group, m: message.id }, { token: stranger.accessToken }))).toBe('NOT_FOUND');
    expect(codeOf(await gql(app, MARK_READ, { c: other, m: message.id }, { token: alice.accessToken }))).toBe('NOT_FOUND');
  });
});

describe('encryption at rest', () => {
  it('stores no plaintext text, edit history or location in the raw tables', async () => {
    const marker = `plaintext-${uniqueName()}`;
    const message = await sendText(app, alice, group, `${marker} original`);
    await gql(app, EDIT, { id: message.id, text: `${marker} edited` }, { token: alice.accessToken });
    await send(alice, { kind: 'LOCATION', location: { latitude: 12.345678, longitude: 98.765432 } });

    const client = new pg.Client({ connectionString: inject('databaseUrl') });
    await client.connect();
    try {
      const dump = async (table: string) =>
        (await client.query(`SELECT t::text AS row, encode(convert_to(t::text, 'UTF8'), 'escape') AS raw FROM "${table}" t`)).rows
          .map((r) => `${r.row}\n${r.raw}`)
          .join('\n');
      const [messages, edits] = [await dump('Message'), await dump('MessageEdit')];
      for (const needle of [marker, '12.345678', '98.765432']) {
        expect(messages).not.toContain(needle);
        expect(edits).not.toContain(needle);
      }
      const row = (await client.query(`SELECT content, "contentKeyId" FROM "Message" WHERE id = $1`, [message.id])).rows[0];
      expect(Buffer.from(row.content).includes(Buffer.from(marker))).toBe(false);
      expect(row.contentKeyId).toBe(app.services.config.messageEncryption.currentKeyId);
    } finally {
      await client.end();
    }
    // ...yet members read it back.
    const page = await gql(app, PAGE, { id: group, last: 3 }, { token: bob.accessToken });
    expect(JSON.stringify(page.data)).toContain(`${marker} edited`);
  });
});
