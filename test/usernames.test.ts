// Usernames and display names from issue #14 ("Hostile input"): NFC, no hidden characters, and no
// username whose UTS #39 skeleton another one already has.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrisma } from '../src/db/client.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import type { App } from '../src/server/app.ts';
import { hasHiddenCharacters, usernameSkeleton } from '../src/users/profile.ts';
import { codeOf, gql, registerUser, scratchDatabaseUrl, startTestApp, type TestUser } from './support/helpers.ts';
import { REGISTER } from './support/operations.ts';

const UPDATE_PROFILE = `mutation ($input: UpdateProfileInput!) { updateProfile(input: $input) { displayName } }`;
let app: App;
/** Edits their display name in the tests below. */
let viewer: TestUser;
beforeAll(async () => {
  app = await startTestApp();
  viewer = await registerUser(app, { displayName: 'Before' });
});
afterAll(() => app?.stop());

/** A name no other test run has: letters only, so the look-alike pairs below differ in one place. */
const freshStem = () => Array.from({ length: 8 }, () => 'abcdefghjkpqstuvwxyz'[Math.floor(Math.random() * 20)]).join('');
const register = (username: string, extra: Record<string, unknown> = {}) =>
  gql(app, REGISTER, { input: { email: `${freshStem()}${freshStem()}@example.com`, username, password: 'correct horse battery staple', ...extra } });

describe('look-alike usernames', () => {
  it.each([
    ['m', 'rn'],
    ['o', '0'],
    ['l', '1'],
  ])('refuses "%s" once the name with "%s" exists (CONFLICT), either way round', async (a, b) => {
    const stem = freshStem();
    expect((await register(`${stem}_${a}`)).data?.register).toBeTruthy();
    const lookalike = await register(`${stem}_${b}`);
    expect(codeOf(lookalike)).toBe('CONFLICT');
    expect(lookalike.errors?.[0]?.extensions?.field).toBe('input.username');
    expect(lookalike.errors?.[0]?.message).toMatch(/looks too much like/);

    const other = freshStem();
    expect((await register(`${other}_${b}`)).data?.register).toBeTruthy();
    expect(codeOf(await register(`${other}_${a}`))).toBe('CONFLICT');
  });

  it('the finding: nobody registers a look-alike of an existing account such as an admin’s', async () => {
    const stem = freshStem();
    await register(`admin_${stem}`);
    for (const attempt of [`adrnin_${stem}`, `ADMIN_${stem}`, `admin_${stem}`]) {
      expect(codeOf(await register(attempt)), attempt).toBe('CONFLICT');
    }
    // Not a look-alike: a different name entirely.
    expect((await register(`admins_${stem}`)).data?.register).toBeTruthy();
  });

  it('of two look-alikes registered at once, one wins and the other is CONFLICT', async () => {
    const stem = freshStem();
    const results = await Promise.all([register(`${stem}_m`), register(`${stem}_rn`)]);
    expect(results.map((r) => (r.data?.register ? 'ok' : codeOf(r))).sort()).toEqual(['CONFLICT', 'ok']);
  });

  it('stores the skeleton beside the username', async () => {
    const stem = freshStem();
    const user = await registerUser(app, { username: `${stem}_m01` });
    const row = await app.services.prisma.user.findUniqueOrThrow({ where: { id: user.id } });
    expect(row.usernameSkeleton).toBe(`${stem.replaceAll('m', 'rn')}_rnol`);
  });

  it('refuses zero-width and direction characters in a username with their own message', async () => {
    for (const username of [`ad\u200bmin_${freshStem()}`, `\u202eadmin_${freshStem()}`, `ad\u2060min_${freshStem()}`]) {
      const result = await register(username);
      expect(codeOf(result)).toBe('BAD_USER_INPUT');
      expect(result.errors?.[0]?.message).toMatch(/invisible or text-direction/);
    }
  });
});

describe('display names', () => {
  it.each([
    ['a right-to-left override (fake file name)', 'Invoice\u202Efdp.exe'],
    ['a zero-width space', 'Ad\u200Bmin'],
    ['a zero-width joiner between letters', 'Ad\u200Dmin'],
    ['a left-to-right mark', '\u200EBob'],
    ['a bidi isolate', '\u2067Bob\u2069'],
    ['a BOM inside (trimmed at the ends)', 'Bo\uFEFFb'],
    ['a control character', 'Bob\u0007'],
    ['a line separator', 'Bob\u2028Admin'],
    ['only a Hangul filler (looks blank)', '\u3164'],
  ])('refuses %s', async (_what, displayName) => {
    const result = await gql(app, UPDATE_PROFILE, { input: { displayName } }, { token: viewer.accessToken });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('input.displayName');
  });

  it('refuses them at registration too', async () => {
    const result = await register(`dn_${freshStem()}`, { displayName: 'Eve\u202E' });
    expect(codeOf(result)).toBe('BAD_USER_INPUT');
    expect(result.errors?.[0]?.extensions?.field).toBe('input.displayName');
  });

  it('keeps names in any script and emoji sequences (which hold joiners and tags), stored as NFC', async () => {
    for (const displayName of ['Zoë 日本 محمد', '👨‍👩‍👧 Family', '🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scot', '❤️ 👍🏽']) {
      const result = await gql(app, UPDATE_PROFILE, { input: { displayName } }, { token: viewer.accessToken });
      expect(result.data?.updateProfile.displayName, displayName).toBe(displayName);
    }
    const decomposed = await gql(app, UPDATE_PROFILE, { input: { displayName: 'Rene\u0301e' } }, { token: viewer.accessToken });
    expect(decomposed.data.updateProfile.displayName).toBe('Ren\u00e9e');
  });

  it('hasHiddenCharacters finds one outside an emoji sequence', () => {
    expect(hasHiddenCharacters('👨‍👩‍👧')).toBe(false);
    expect(hasHiddenCharacters('a\u200Db')).toBe(true);
    expect(hasHiddenCharacters('👍\u200B')).toBe(true);
  });
});

describe('the skeleton migration', () => {
  const scratch = scratchDatabaseUrl('kocmoc_skeletons');
  afterAll(() => scratch.drop());

  it('maps the username alphabet as the migration’s SQL does', async () => {
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789_';
    const prisma = app.services.prisma;
    const [row] = await prisma.$queryRaw<Array<{ skeleton: string }>>`SELECT replace(translate(${alphabet}, '01', 'ol'), 'm', 'rn') AS skeleton`;
    expect(usernameSkeleton(alphabet)).toBe(row!.skeleton);
  });

  it('backfills existing users: the oldest of a look-alike group holds the skeleton, the rest keep their names without one', async () => {
    await ensureDatabase(scratch.url);
    const before = mkdtempSync(join(tmpdir(), 'kocmoc-migrations-'));
    cpSync('prisma/migrations', before, { recursive: true, filter: (path) => !path.includes('_username_skeleton') });
    const prisma = createPrisma(scratch.url);
    try {
      await applyMigrations({ databaseUrl: scratch.url, migrationsDir: before });
      const users = ['bob', 'b0b', 'mary', 'rnary', 'alice'];
      for (const [index, username] of users.entries()) {
        await prisma.$executeRaw`INSERT INTO "User" ("id", "email", "username", "passwordHash", "displayName", "createdAt", "updatedAt")
          VALUES (${username}, ${`${username}@example.com`}, ${username}, 'x', ${username}, ${new Date(Date.UTC(2025, 0, index + 1))}, now())`;
      }
      await applyMigrations({ databaseUrl: scratch.url });
      const rows = await prisma.$queryRaw<Array<{ username: string; usernameSkeleton: string | null }>>`
        SELECT "username", "usernameSkeleton" FROM "User" ORDER BY "username"`;
      expect(Object.fromEntries(rows.map((r) => [r.username, r.usernameSkeleton]))).toEqual({
        alice: usernameSkeleton('alice'),
        b0b: null,
        bob: usernameSkeleton('bob'),
        mary: usernameSkeleton('mary'),
        rnary: null,
      });
    } finally {
      await prisma.$disconnect();
      rmSync(before, { recursive: true, force: true });
    }
  });
});
