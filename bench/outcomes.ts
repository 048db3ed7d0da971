// What the benches count about the requests they send: each request's outcome, outcomes tallied by
// code, latency percentiles, and a labelled measurement of one run of requests.
import { measureRun, type RunReadingOptions, type RunReadings } from './readings.ts';
import { percentile } from './stats.ts';

/** One request's outcome: `OK` or its error code, and how long it took. */
export interface Outcome {
  code: string;
  ms: number;
}

/** One labelled run of requests: every request's outcome, and the readings taken around the run. */
export interface Measurement extends Omit<RunReadings<unknown>, 'value'> {
  label: string;
  outcomes: Outcome[];
}

/** Runs `fire` once with every reading around it (measureRun) and labels the outcomes it returned. */
export async function measureOutcomes(label: string, fire: () => Promise<Outcome[]>, options: RunReadingOptions): Promise<Measurement> {
  const { value: outcomes, ...readings } = await measureRun(fire, options);
  return { label, outcomes, ...readings };
}

/** How many of the outcomes have `code`. */
export const countCode = (outcomes: readonly Outcome[], code: string) => outcomes.filter((o) => o.code === code).length;

/** The latencies of the outcomes with `code`, or of all of them. */
export const latenciesOf = (outcomes: readonly Outcome[], code?: string) =>
  outcomes.filter((o) => code === undefined || o.code === code).map((o) => o.ms);

/** Outcomes counted by code (`OK`, an error code, `TIMEOUT`, ...). */
export type CodeCounts = Record<string, number>;

/** Counts the codes, in the order each first occurs. */
export function tallyCodes(codes: Iterable<string>): CodeCounts {
  const counts: CodeCounts = {};
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

export const countOf = (counts: CodeCounts, code: string) => counts[code] ?? 0;
export const totalOf = (counts: CodeCounts) => Object.values(counts).reduce((sum, n) => sum + n, 0);

/** `CODE xN, ...` for every code but those left out; empty when none is left. */
export function describeCounts(counts: CodeCounts, leaveOut: readonly string[] = []): string {
  return Object.entries(counts)
    .filter(([code]) => !leaveOut.includes(code))
    .map(([code, n]) => `${code} x${n}`)
    .join(', ');
}

/** Latency percentiles of one measured window, in milliseconds (NaN without requests). */
export interface Latency {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarizeLatency(latencies: readonly number[]): Latency {
  return {
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: maxOf(latencies),
  };
}

/** The largest value; NaN when there are none. */
export const maxOf = (values: readonly number[]) => (values.length > 0 ? Math.max(...values) : Number.NaN);
