// What every bench reads around one measured run: wall time, event-loop delay and utilization,
// this process's and its main thread's CPU, the machine's busy share and, on request, who used the CPU.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { cpuSplitBetween, hostBusyShare, mainThreadCpuMs, sampleCpuSplit, sampleHostCpu } from './host-cpu.ts';
import { sleep } from './stats.ts';

export interface RunReadingOptions {
  /** A pause before the run, so the previous one's stragglers do not count. */
  settleMs: number;
  /** Split the CPU by thread and PostgreSQL (scans /proc; see sampleCpuSplit), naming the load client's thread. */
  cpuSplit?: { loadClientTid: number | undefined };
}

export interface RunReadings<T> {
  /** What the run returned. */
  value: T;
  wallMs: number;
  /** This process's CPU over the run: main thread, pool threads, load client. */
  cpuMs: number;
  /** The main thread's CPU alone (NaN where /proc cannot tell). */
  mainCpuMs: number;
  /** Share of all cores busy over the run, whoever used them (this process, PostgreSQL, anything else). */
  hostBusy: number;
  /** Event-loop utilization: the share of the run the main thread spent working rather than waiting. */
  loopBusy: number;
  /** monitorEventLoopDelay at 1 ms resolution, which the values include. */
  loopDelayMs: { p50: number; p99: number; max: number };
  /** CPU milliseconds by who used it, when asked for. */
  cpuSplit: Map<string, number> | undefined;
}

/** Runs `run` once, after a pause, with every reading taken around it. */
export async function measureRun<T>(run: () => Promise<T>, { settleMs, cpuSplit }: RunReadingOptions): Promise<RunReadings<T>> {
  await sleep(settleMs);
  const histogram = monitorEventLoopDelay({ resolution: 1 });
  histogram.enable();
  const cpuBefore = process.cpuUsage();
  const mainBefore = mainThreadCpuMs();
  const hostBefore = sampleHostCpu();
  const splitBefore = cpuSplit && sampleCpuSplit(cpuSplit.loadClientTid);
  const loopBefore = performance.eventLoopUtilization();
  const started = performance.now();
  const value = await run();
  const wallMs = performance.now() - started;
  const loopBusy = performance.eventLoopUtilization(loopBefore).utilization;
  const mainCpuMs = mainThreadCpuMs() - mainBefore;
  const cpu = process.cpuUsage(cpuBefore);
  const hostBusy = hostBusyShare(hostBefore, sampleHostCpu());
  const split = cpuSplit && cpuSplitBetween(splitBefore, sampleCpuSplit(cpuSplit.loadClientTid));
  histogram.disable();
  return {
    value,
    wallMs,
    cpuMs: (cpu.user + cpu.system) / 1_000,
    mainCpuMs,
    hostBusy,
    loopBusy,
    loopDelayMs: { p50: histogram.percentile(50) / 1e6, p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 },
    cpuSplit: split,
  };
}
