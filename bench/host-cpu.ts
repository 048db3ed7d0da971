// Machine-wide CPU use from /proc/stat, so a bench can tell its own load from other processes'.
// Linux only; elsewhere the readings are undefined and the benches print `-`.
import { readFileSync } from 'node:fs';

export interface HostCpuSample {
  busy: number;
  total: number;
}

export function sampleHostCpu(): HostCpuSample | undefined {
  try {
    // First line: "cpu  user nice system idle iowait irq softirq steal ..." in clock ticks, all cores summed.
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Share of all cores' time that was busy between two samples, 0..1. */
export function hostBusyShare(before: HostCpuSample | undefined, after: HostCpuSample | undefined): number {
  if (!before || !after || after.total === before.total) return Number.NaN;
  return (after.busy - before.busy) / (after.total - before.total);
}
