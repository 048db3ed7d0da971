// CPU readings from /proc: the whole machine's, so a bench can tell its own load from other
// processes', and single threads'. Linux only; elsewhere the readings are undefined or NaN and the
// benches print `-`.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

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

/**
 * The part of a window's host busy share that the CPU named (the bench's own processes, PostgreSQL,
 * ...) does not explain: other load on the machine, which disturbed the reading. CPU that could not
 * be read (NaN) counts as none.
 */
export function othersBusyShare(hostBusy: number, wallMs: number, ourCpuMs: readonly number[]): number {
  const ours = ourCpuMs.reduce((sum, ms) => sum + (Number.isNaN(ms) ? 0 : ms), 0);
  return Math.max(0, hostBusy - ours / (wallMs * availableParallelism()));
}

/** CPU milliseconds per thread or process, keyed by who used it. */
export type CpuSplitSample = Map<'main thread' | 'load client' | 'pool and other threads' | 'PostgreSQL', number>;

/** The scheduler's exact run time of a thread or process (`se.sum_exec_runtime`, ms), unlike /proc stat's 10 ms ticks. */
function runtimeMs(schedPath: string): number {
  const match = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(readFileSync(schedPath, 'utf8'));
  return match ? Number(match[1]) : Number.NaN;
}

/**
 * CPU time of the main thread alone: process.cpuUsage() sums every thread, pool included, and
 * event-loop utilization counts wall time, which stretches when other threads take the cores.
 */
export function mainThreadCpuMs(): number {
  try {
    // The main thread's id is the process id.
    return runtimeMs(`/proc/self/task/${process.pid}/sched`);
  } catch {
    return Number.NaN;
  }
}

/**
 * Who used the CPU: this process's threads (its main thread, the load client's thread, everything
 * else: worker pool, libuv, V8 helpers) and every local `postgres` process. Linux only.
 */
export function sampleCpuSplit(loadClientTid: number | undefined): CpuSplitSample | undefined {
  try {
    const split: CpuSplitSample = new Map([['main thread', 0], ['load client', 0], ['pool and other threads', 0], ['PostgreSQL', 0]]);
    for (const tid of readdirSync('/proc/self/task')) {
      const who = Number(tid) === process.pid ? 'main thread' : Number(tid) === loadClientTid ? 'load client' : 'pool and other threads';
      split.set(who, split.get(who)! + runtimeMs(`/proc/self/task/${tid}/sched`));
    }
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
        split.set('PostgreSQL', split.get('PostgreSQL')! + runtimeMs(`/proc/${pid}/sched`));
      } catch {
        // The process ended between the listing and the read.
      }
    }
    return split;
  } catch {
    return undefined;
  }
}

/** Milliseconds of CPU each user spent between two samples. */
export function cpuSplitBetween(before: CpuSplitSample | undefined, after: CpuSplitSample | undefined): Map<string, number> | undefined {
  if (!before || !after) return undefined;
  return new Map([...after].map(([who, ms]) => [who, ms - (before.get(who) ?? 0)]));
}

/** CPU milliseconds (all threads, 10 ms ticks) of the processes with these ids, from /proc/<pid>/stat. */
export function processesCpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name: state is the 3rd, utime and stime the 14th and 15th.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // It exited.
    }
  }
  return ticks * 10;
}

/** Ids of the running processes whose command name is one of `names` (e.g. postgres, redis-server). */
export function pidsNamed(names: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (names.includes(readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) pids.push(Number(entry));
    } catch {
      // It exited.
    }
  }
  return pids;
}
