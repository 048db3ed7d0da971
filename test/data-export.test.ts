// exportMyData: one JSON file of the account's data behind a signed link for its owner alone, stored
// encrypted, once a day, deleted once its time is up.
import { describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import type { FileStorage } from '../src/files/storage.ts';
import { deleteExports, exportMyData } from '../src/users/data-export.ts';
import { codeOf, createChat, fetchPath, gql, registerUser, sendText, useUploadTestApp, uploadThroughFetch, type TestUser } from './support/helpers.ts';
import { ADD_CONTACT, BLOCK_USER, DELETE_MESSAGE, LOGIN, SEND_MESSAGE } from './support/operations.ts';

const EXPORT = 'mutation { exportMyData }';
const SCHEDULE = 'mutation ($input: ScheduleMessageInput!) { scheduleMessage(input: $input) { id } }';
const DAY = 24 * 60 * 60_000;

let app: App;
useUploadTestApp({ PUSH_ENABLED: 'false' }, (started) => (app = started));

const exportOf = (user: TestUser) => gql(app, EXPORT, {}, { token: user.accessToken });

async function readAll(stream: AsyncIterable<Uint8Array>) {
  const pieces: Uint8Array[] = [];
  for await (const piece of stream) pieces.push(piece);
  return Buffer.concat(pieces);
}

describe('exportMyData', () => {
  it('hands its owner a link to everything the account holds, their own messages decrypted', async () => {
    const [alice, bob, carol] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    await gql(app, 'mutation { updateProfile(input: { bio: "Writes compilers." }) { id } }', {}, { token: alice.accessToken });
    await gql(app, ADD_CONTACT, { userId: bob.id }, { token: alice.accessToken });
    await gql(app, BLOCK_USER, { userId: carol.id }, { token: alice.accessToken });
    const direct = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const group = await createChat(app, bob, { kind: 'GROUP', title: 'Book club', memberIds: [alice.id, carol.id] });
    const first = await sendText(app, alice, direct, 'first draft', { clientMessageId: 'client-1' });
    await gql(app, 'mutation ($id: ID!) { editMessage(id: $id, text: "final text") { id } }', { id: first.id }, { token: alice.accessToken });
    await gql(app, SEND_MESSAGE, { input: { chatId: group, kind: 'LOCATION', location: { latitude: 48.85, longitude: 2.35 } } }, { token: alice.accessToken });
    const gone = await sendText(app, alice, group, 'regretted');
    await gql(app, DELETE_MESSAGE, { id: gone.id }, { token: alice.accessToken });
    await sendText(app, bob, direct, 'bob’s own words');
    const upload = await uploadThroughFetch(app, alice.accessToken, Buffer.from('notes'), { kind: 'FILE', name: 'notes.txt' });
    const scheduleIn = (text: string, by = alice) =>
      gql(app, SCHEDULE, { input: { chatId: group, kind: 'TEXT', text, sendAt: new Date(Date.now() + DAY).toISOString() } }, { token: by.accessToken }).then(
        (r) => r.data.scheduleMessage.id as string,
      );
    const waiting = await scheduleIn('see you tomorrow');
    const called = await scheduleIn('never mind');
    await scheduleIn('bob’s plan', bob);
    await gql(app, 'mutation ($id: ID!) { cancelScheduledMessage(id: $id) { id } }', { id: called }, { token: alice.accessToken });
    await gql(app, LOGIN, { input: { login: alice.username, password: alice.password } });

    const result = await exportOf(alice);
    expect(result.errors).toBeUndefined();
    const link: string = result.data.exportMyData;
    // Absolute, under the origin the request came to (no PUBLIC_URL here).
    expect(link).toMatch(new RegExp(`^http://kocmoc\\.test/exports/[0-9a-f-]{36}\\?u=${alice.id}&expires=\\d+&sig=[A-Za-z0-9_-]+$`));

    const response = await fetchPath(app, link);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('content-disposition')).toMatch(/^attachment; filename="kocmoc-data-export-\d{4}-\d\d-\d\d\.json"/);
    const data = JSON.parse(await response.text());
    expect(data).toMatchObject({ format: 'kocmoc-data-export', version: 1 });
    expect(data.profile).toMatchObject({ id: alice.id, username: alice.username, email: alice.email, bio: 'Writes compilers.' });
    expect(data.contacts.map((c: any) => c.id)).toEqual([bob.id]);
    expect(data.blockedUsers.map((b: any) => b.id)).toEqual([carol.id]);
    const chats = Object.fromEntries(data.chats.map((c: any) => [c.id, c]));
    expect(chats[direct]).toMatchObject({ kind: 'DIRECT', role: 'MEMBER', with: { id: bob.id, username: bob.username } });
    expect(chats[group]).toMatchObject({ kind: 'GROUP', title: 'Book club', role: 'MEMBER' });
    expect(chats[group].with).toBeUndefined();
    expect(data.sessions).toHaveLength(2);
    expect(data.uploads).toEqual([expect.objectContaining({ id: upload.id, name: 'notes.txt', kind: 'FILE' })]);
    // Only alice's messages, decrypted, with their history; a deleted one without content.
    expect(data.messages).toEqual([
      expect.objectContaining({ id: first.id, chatId: direct, text: 'final text', clientMessageId: 'client-1', edits: [expect.objectContaining({ text: 'first draft' })] }),
      expect.objectContaining({ chatId: group, kind: 'LOCATION', location: { latitude: 48.85, longitude: 2.35 } }),
      expect.objectContaining({ id: gone.id, text: null, deletedAt: expect.any(String) }),
    ]);

    // Her scheduled messages, decrypted, whatever became of them.
    expect(data.scheduledMessages).toEqual([
      expect.objectContaining({ id: waiting, chatId: group, kind: 'TEXT', text: 'see you tomorrow', state: 'PENDING', sendAt: expect.any(String) }),
      expect.objectContaining({ id: called, text: 'never mind', state: 'CANCELLED' }),
    ]);

    // At rest the file is sealed: none of it is readable in storage.
    const row = await app.services.prisma.dataExport.findFirstOrThrow({ where: { userId: alice.id } });
    const stored = await readAll(await app.services.storage.get(row.storageKey));
    for (const plain of [alice.email, 'final text', 'first draft', 'see you tomorrow', 'kocmoc-data-export']) expect(stored.includes(plain)).toBe(false);
    expect(stored.byteLength).toBeGreaterThan(row.size);

    // Alice's token works too; nobody else's, and no altered or re-aimed link.
    const path = link.split('?')[0]!;
    expect((await fetchPath(app, path, { authorization: `Bearer ${alice.accessToken}` })).status).toBe(200);
    expect((await fetchPath(app, path, { authorization: `Bearer ${bob.accessToken}` })).status).toBe(404);
    expect((await fetchPath(app, path)).status).toBe(401);
    expect((await fetchPath(app, link.replace(/sig=(.)/, (_, c: string) => `sig=${c === 'A' ? 'B' : 'A'}`))).status).toBe(403);
    expect((await fetchPath(app, link.replace(`u=${alice.id}`, `u=${bob.id}`))).status).toBe(403);
    expect((await fetchPath(app, link.replace('/exports/', '/files/'))).status).toBe(403);
  });

  it('is once a day: RATE_LIMITED with retryAfterSeconds, and a failed export does not count', async () => {
    const user = await registerUser(app);
    const { prisma } = app.services;
    // An export that fails (the storage is full) leaves the day's export to a retry.
    const failing: FileStorage = { ...app.services.storage, put: () => Promise.reject(new Error('disk full')) };
    await expect(exportMyData({ ...app.services, storage: failing }, user.id)).rejects.toThrow('disk full');
    expect((await prisma.user.findUniqueOrThrow({ where: { id: user.id } })).dataExportedAt).toBeNull();
    expect(await prisma.dataExport.count({ where: { userId: user.id } })).toBe(0);

    expect((await exportOf(user)).errors).toBeUndefined();
    const again = await exportOf(user);
    expect(again.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const retryAfter = again.errors?.[0]?.extensions?.retryAfterSeconds;
    expect(retryAfter).toBeGreaterThan(DAY / 1_000 - 60);
    expect(retryAfter).toBeLessThanOrEqual(DAY / 1_000);
    expect(await prisma.dataExport.count({ where: { userId: user.id } })).toBe(1);

    // A day later it works again.
    await prisma.user.update({ where: { id: user.id }, data: { dataExportedAt: new Date(Date.now() - DAY - 1_000) } });
    expect((await exportOf(user)).errors).toBeUndefined();
    expect(codeOf(await gql(app, EXPORT))).toBe('UNAUTHENTICATED');
  });

  it('stops working when its time is up, and the clean-up deletes the file', async () => {
    const user = await registerUser(app);
    const link: string = (await exportOf(user)).data.exportMyData;
    const { prisma, storage } = app.services;
    const row = await prisma.dataExport.findFirstOrThrow({ where: { userId: user.id } });
    expect(row.expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(60 * 60_000);
    expect(Number(new URL(link, 'http://x').searchParams.get('expires')) * 1_000).toBe(row.expiresAt.getTime());
    // An account with nothing in it yet exports a document all the same.
    expect(JSON.parse(await (await fetchPath(app, link)).text())).toMatchObject({ profile: { id: user.id }, contacts: [], chats: [], messages: [] });

    await prisma.dataExport.update({ where: { id: row.id }, data: { expiresAt: new Date(Date.now() - 1_000) } });
    expect((await fetchPath(app, link)).status).toBe(404);
    expect(await deleteExports(app.services, { id: row.id, expiresAt: { lte: new Date() } })).toBe(1);
    expect(await prisma.dataExport.count({ where: { id: row.id } })).toBe(0);
    expect(await storage.stat(row.storageKey)).toBeNull();
  });

  it('goes with the account when it is deleted', async () => {
    const user = await registerUser(app);
    await exportOf(user);
    const row = await app.services.prisma.dataExport.findFirstOrThrow({ where: { userId: user.id } });
    await gql(app, 'mutation ($p: String!) { deleteAccount(password: $p) }', { p: user.password }, { token: user.accessToken });
    expect(await app.services.prisma.dataExport.count({ where: { userId: user.id } })).toBe(0);
    expect(await app.services.storage.stat(row.storageKey)).toBeNull();
  });
});
