// Small numeric and text helpers shared by the benches.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const median = (values: readonly number[]) => percentile(values, 50);

/** Fixed decimals, or `-` for NaN so empty measurements read as such. */
export const fixed = (value: number, digits = 1) => (Number.isNaN(value) ? '-' : value.toFixed(digits));

/** A plain-text table: first column left-aligned, the rest right-aligned (they are numbers). */
export function table(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number>>): string {
  const cells = [headers, ...rows].map((row) => row.map(String));
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)));
  const line = (row: string[]) =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return cells.map(line).join('\n');
}

/** `values` turned left by `by` places, so each round of a comparison starts with another contender. */
export function rotate<T>(values: readonly T[], by: number): T[] {
  const offset = by % values.length;
  return [...values.slice(offset), ...values.slice(0, offset)];
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The event-loop monitor's floor on this machine (p99 in ms while idle), to read measurements against. */
export async function idleLoopDelayP99(): Promise<number> {
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  await sleep(300);
  histogram.disable();
  return histogram.percentile(99) / 1e6;
}

/**
 * `sum(numerator) / sum(denominator) - 1` over paired rounds (the long-run ratio: a collection that
 * lands in one round counts as much as it costs), with a 90 % bootstrap interval from resampling
 * the rounds (a fixed-seed generator, so a rerun on the same numbers prints the same interval).
 */
export function pairedRatio(numerator: readonly number[], denominator: readonly number[], resamples = 2_000) {
  const ratio = (rounds: readonly number[]) => {
    let top = 0;
    let bottom = 0;
    for (const round of rounds) {
      top += numerator[round]!;
      bottom += denominator[round]!;
    }
    return top / bottom - 1;
  };
  const all = numerator.map((_, round) => round);
  let seed = 0x9e3779b9;
  const random = () => {
    seed = (seed * 1_664_525 + 1_013_904_223) >>> 0;
    return seed / 2 ** 32;
  };
  const samples = Array.from({ length: resamples }, () => ratio(all.map(() => Math.floor(random() * all.length))));
  return { ratio: ratio(all), low: percentile(samples, 5), high: percentile(samples, 95) };
}
