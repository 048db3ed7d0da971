// What runs after deleteAccount: the last erasure pass an hour later (what requests in flight wrote,
// what a crash left), and the username's release after its 30 days of reservation.
import { describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { FINAL_ERASURE_DELAY_MS, finishErasures, releaseUsernames, startAccountCleanup } from '../src/users/account-cleanup.ts';
import { USERNAME_RESERVATION_MS } from '../src/users/account-deletion.ts';
import { uploadFile } from '../src/files/uploads.ts';
import { sendMessage } from '../src/messages/messages.ts';
import { codeOf, createChat, gql, registerUser, useUploadTestApp, type TestUser } from './support/helpers.ts';
import { REGISTER } from './support/operations.ts';

const DELETE_ACCOUNT = 'mutation ($p: String!) { deleteAccount(password: $p) }';
const HOUR = 60 * 60_000;

let app: App;
useUploadTestApp({ PUSH_ENABLED: 'false' }, (started) => (app = started));

async function deleted(user: TestUser) {
  const result = await gql(app, DELETE_ACCOUNT, { p: user.password }, { token: user.accessToken });
  if (!result.data?.deleteAccount) throw new Error(`deleteAccount failed: ${JSON.stringify(result.errors)}`);
  return user;
}

/** Moves a deletion back in time, as if it had happened `ms` ago. */
async function backdate(user: TestUser, ms: number, reservationLeftMs = USERNAME_RESERVATION_MS - ms) {
  await app.services.prisma.accountDeletion.update({
    where: { userId: user.id },
    data: { deletedAt: new Date(Date.now() - ms), usernameReleaseAt: new Date(Date.now() + reservationLeftMs) },
  });
}

const registerWith = (username: string) =>
  gql(app, REGISTER, { input: { email: `${username}.again@example.com`, username, password: 'a perfectly good password' } });

describe('finishErasures', () => {
  it('erases, an hour after the deletion, what requests in flight wrote after it', async () => {
    const [alice, bob] = await Promise.all([registerUser(app), registerUser(app)]);
    const direct = await createChat(app, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    await deleted(alice);
    // As a send and an upload that had passed authentication before the deletion would land after it.
    const late = await sendMessage(app.services, alice.id, { chatId: direct, kind: 'TEXT', text: 'sent while deleting' });
    const bytes = Buffer.from('uploaded while deleting');
    const upload = await uploadFile(app.services, alice.id, { name: 'late.txt', size: bytes.length, stream: async function* () { yield bytes; } }, 'FILE');
    const { prisma, storage } = app.services;
    const cutoff = () => new Date(Date.now() - FINAL_ERASURE_DELAY_MS);

    // Not yet: the deletion is recent.
    await finishErasures(app.services, cutoff());
    expect((await prisma.message.findUniqueOrThrow({ where: { id: late.id } })).content).not.toBeNull();
    expect((await prisma.accountDeletion.findUniqueOrThrow({ where: { userId: alice.id } })).erasedAt).toBeNull();

    await backdate(alice, 2 * HOUR);
    expect(await finishErasures(app.services, cutoff())).toBeGreaterThanOrEqual(1);
    expect(await prisma.message.findUniqueOrThrow({ where: { id: late.id } })).toMatchObject({ content: null, deletedAt: expect.any(Date) });
    expect(await prisma.attachment.count({ where: { id: upload.id } })).toBe(0);
    expect(await storage.stat(upload.storageKey)).toBeNull();
    const { erasedAt } = await prisma.accountDeletion.findUniqueOrThrow({ where: { userId: alice.id } });
    expect(erasedAt).not.toBeNull();
    // Once is enough: the next run leaves it alone.
    await finishErasures(app.services, cutoff());
    expect((await prisma.accountDeletion.findUniqueOrThrow({ where: { userId: alice.id } })).erasedAt).toEqual(erasedAt);
  });
});

describe('releaseUsernames', () => {
  it('keeps a deleted account’s username reserved for 30 days, then lets anyone register it', async () => {
    const [due, notDue, unerased] = await Promise.all([registerUser(app), registerUser(app), registerUser(app)]);
    for (const user of [due, notDue, unerased]) await deleted(user);
    await backdate(due, USERNAME_RESERVATION_MS + HOUR);
    await backdate(notDue, USERNAME_RESERVATION_MS - HOUR);
    await backdate(unerased, USERNAME_RESERVATION_MS + HOUR);
    await finishErasures(app.services, new Date(Date.now() - FINAL_ERASURE_DELAY_MS));
    const { prisma } = app.services;
    // As if its last erasure pass had failed every time: its name stays reserved.
    await prisma.accountDeletion.update({ where: { userId: unerased.id }, data: { erasedAt: null, deletedAt: new Date() } });

    expect(codeOf(await registerWith(due.username))).toBe('CONFLICT');
    expect(await releaseUsernames(app.services)).toBeGreaterThanOrEqual(1);

    expect((await prisma.user.findUniqueOrThrow({ where: { id: due.id } })).username).toBe(`deleted_${due.id.replaceAll('-', '')}`);
    expect(await prisma.accountDeletion.count({ where: { userId: due.id } })).toBe(0);
    const taken = await registerWith(due.username);
    expect(taken.errors).toBeUndefined();
    expect(taken.data.register.user).toMatchObject({ username: due.username });
    expect(taken.data.register.user.id).not.toBe(due.id);
    for (const user of [notDue, unerased]) {
      expect((await prisma.user.findUniqueOrThrow({ where: { id: user.id } })).username).toBe(user.username);
      expect(codeOf(await registerWith(user.username))).toBe('CONFLICT');
    }
  });
});

describe('startAccountCleanup', () => {
  it('runs both on its interval and stops', async () => {
    const user = await deleted(await registerUser(app));
    await backdate(user, USERNAME_RESERVATION_MS + HOUR);
    const stopCleanup = startAccountCleanup(app.services, { intervalMs: 20 });
    try {
      await vi.waitFor(async () => expect(await app.services.prisma.accountDeletion.count({ where: { userId: user.id } })).toBe(0), { timeout: 5_000 });
    } finally {
      await stopCleanup();
    }
    expect((await registerWith(user.username)).errors).toBeUndefined();
  });
});
