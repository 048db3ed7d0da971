// OWASP's five argon2id settings of equal strength, side by side on this machine: one verification
// alone, and the worker pool's throughput with every thread verifying at once. The rows differ in how
// their memory (7–46 MiB per hash) shares the caches when all cores hash, which decides the default.
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { OWASP_ARGON2ID_SETTINGS } from '../src/env.ts';
import { createWorkerPool } from '../src/cpu/pool.ts';
import { hashPassword, verifyPassword } from '../workers/passwords.ts';
import type { BenchContext } from './setup.ts';
import { fixed, median, table } from './stats.ts';

const PASSWORD = 'correct horse battery staple';
const SINGLE_RUNS = 20;
/** Verifications per pool run: about a second of work for every row on 2 cores. */
const POOL_VERIFICATIONS = 200;
/** Runs per row, interleaved across rows so drifting machine load hits all alike; the median is shown. */
const ROUNDS = 3;
/** The row the ratios compare against: OWASP's headline setting. */
const BASELINE = { memoryKib: 19_456, passes: 2 };

export async function runArgon2Settings(_context: BenchContext): Promise<void> {
  const threads = availableParallelism();
  const pool = createWorkerPool({ threads });
  try {
    const rows = OWASP_ARGON2ID_SETTINGS.map((setting) => ({
      setting,
      hash: hashPassword({ password: PASSWORD, ...setting }),
      singleMs: [] as number[],
      poolRates: [] as number[],
    }));
    for (const row of rows) await pool.run('verifyPassword', { hash: row.hash, password: PASSWORD });
    for (let round = 0; round < ROUNDS; round++) {
      for (const row of rows) {
        row.singleMs.push(singleVerifyMs(row.hash));
        const started = performance.now();
        await Promise.all(Array.from({ length: POOL_VERIFICATIONS }, () => pool.run('verifyPassword', { hash: row.hash, password: PASSWORD })));
        row.poolRates.push((POOL_VERIFICATIONS * 1_000) / (performance.now() - started));
      }
    }

    const baseline = rows.find((row) => row.setting.memoryKib === BASELINE.memoryKib && row.setting.passes === BASELINE.passes)!;
    const baselineRate = median(baseline.poolRates);
    console.log(`argon2id p=1, ${threads} pool threads, ${POOL_VERIFICATIONS} verifications at once per run, ${ROUNDS} rounds interleaved (medians)`);
    console.log(`single: one verification on the main thread, median of ${SINGLE_RUNS}; ceiling: ${threads} cores x 1000 / single`);
    console.log(
      table(
        ['memory KiB', 'passes', 'single ms', 'ceiling/s', 'pool verifies/s', '% of ceiling', `pool x vs ${BASELINE.memoryKib}/${BASELINE.passes}`],
        rows.map((row) => {
          const single = median(row.singleMs);
          const rate = median(row.poolRates);
          const ceiling = (threads * 1_000) / single;
          return [row.setting.memoryKib, row.setting.passes, fixed(single, 2), fixed(ceiling), fixed(rate), fixed((rate / ceiling) * 100), fixed(rate / baselineRate, 2)];
        }),
      ),
    );
  } finally {
    await pool.close();
  }
}

function singleVerifyMs(hash: string): number {
  const times: number[] = [];
  for (let run = 0; run < SINGLE_RUNS; run++) {
    const started = performance.now();
    verifyPassword({ hash, password: PASSWORD });
    times.push(performance.now() - started);
  }
  return median(times);
}
