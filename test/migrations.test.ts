// The committed migrations must build exactly prisma/schema.prisma, and apply cleanly.
import { cpSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { applyMigrations, createMigration, pendingMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { scratchDatabaseUrl } from './support/helpers.ts';

const scratch = scratchDatabaseUrl('kocmoc_migrations');
afterAll(() => scratch.drop());

describe('migrations', () => {
  const committed = readdirSync('prisma/migrations').filter((name) => /^\d{14}_/.test(name)).sort();

  it('match schema.prisma (run `npm run db:migration -- <name>` after editing it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kocmoc-migrations-'));
    cpSync('prisma/migrations', dir, { recursive: true });
    expect(await createMigration({ databaseUrl: inject('databaseUrl'), name: 'drift_check', migrationsDir: dir })).toBeNull();
  });

  it('apply to an empty database once, then report nothing pending', async () => {
    const { url } = scratch;
    await ensureDatabase(url);
    expect(await pendingMigrations({ databaseUrl: url })).toEqual(committed);
    expect((await applyMigrations({ databaseUrl: url })).applied).toEqual(committed);
    expect((await applyMigrations({ databaseUrl: url })).applied).toEqual([]);
    expect(await pendingMigrations({ databaseUrl: url })).toEqual([]);
  });
});
