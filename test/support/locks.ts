// Table locks that hold statements at a known point. Only for tests on a database of their own:
// the lock would stall every other test file's statements on that table.
import type pg from 'pg';
import { expect, vi } from 'vitest';
import { databaseName, openClient, quoteIdent, withDatabase } from '../../src/db/pg-admin.ts';

export interface TableLock {
  release(): Promise<void>;
}

/** Locks and lock waits on `databaseUrl`'s database, watched from its server's `postgres` database. */
export async function tableLocks(databaseUrl: string) {
  const name = databaseName(databaseUrl);
  const admin: pg.Client = await openClient(withDatabase(databaseUrl, 'postgres'));
  return {
    /** Holds an ACCESS EXCLUSIVE lock on `table`: every statement touching it waits until `release()`. */
    async lock(table: string): Promise<TableLock> {
      const holder = await openClient(databaseUrl);
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${quoteIdent(table)} IN ACCESS EXCLUSIVE MODE`);
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          // A database outage may have ended the holder's connection, and its lock with it.
          await holder.query('ROLLBACK').catch(() => {});
          await holder.end().catch(() => {});
        },
      };
    },
    /** Resolves once a statement containing `fragment` waits for a lock. */
    async waitsFor(fragment: string) {
      await vi.waitFor(
        async () => {
          const { rows } = await admin.query(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE $2`,
            [name, `%${fragment}%`],
          );
          expect(rows[0].n).toBeGreaterThan(0);
        },
        { timeout: 5_000, interval: 20 },
      );
    },
    close: () => admin.end(),
  };
}
