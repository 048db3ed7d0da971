// Piscina worker entry. Worker threads do not inherit the TypeScript loader of the main thread
// (tsx, vitest), so the tasks are loaded through tsx's API here; this file stays plain JS.
import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { tsImport } from 'tsx/esm/api';

const tasks = await tsImport('./index.ts', import.meta.url);
lowerThreadPriority(Piscina.workerData?.nice ?? 0);

/**
 * Linux keeps a nice value per thread, and /proc/thread-self names this one: only the worker
 * thread yields to the event loop, not the whole process. Elsewhere this does nothing.
 */
function lowerThreadPriority(nice) {
  if (nice <= 0 || process.platform !== 'linux') return;
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), nice);
  } catch {
    // Without /proc the threads run at the process's priority: slower answers under load, nothing worse.
  }
}

/** The ArrayBuffers a task lists on its result as safe to move rather than copy (see workers/crypto.ts). */
const TRANSFERABLE_RESULT = Symbol.for('kocmoc.worker.transferableResult');

/**
 * This thread's CPU time in ms from the Linux scheduler, or undefined where /proc cannot tell.
 * The file stays open (a read of it then costs about 2 µs, against 20 µs opening it each time);
 * `schedstat` reads 0 on kernels without scheduler statistics, where `sched` still tells.
 */
function threadCpuMs() {
  try {
    cpuFile ??= openCpuFile();
    const length = readSync(cpuFile.fd, cpuBuffer, 0, cpuBuffer.length, 0);
    const text = cpuBuffer.toString('latin1', 0, length);
    if (cpuFile.kind === 'schedstat') return Number(text.slice(0, text.indexOf(' '))) / 1e6;
    const match = /se\.sum_exec_runtime\s*:\s*([\d.]+)/.exec(text);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

let cpuFile;
const cpuBuffer = Buffer.alloc(4096);

function openCpuFile() {
  const fd = openSync('/proc/thread-self/schedstat', 'r');
  const length = readSync(fd, cpuBuffer, 0, cpuBuffer.length, 0);
  if (Number.parseInt(cpuBuffer.toString('latin1', 0, length), 10) > 0) return { fd, kind: 'schedstat' };
  closeSync(fd);
  return { fd: openSync('/proc/thread-self/sched', 'r'), kind: 'sched' };
}

/**
 * Runs one task and reports how long it took (`ms`, wall time) and how much work it was (`workMs`),
 * so the pool can estimate queued work. For synchronous tasks (argon2) the work is the thread's CPU
 * time, which does not grow when the event loop takes the core for a while; tasks that wait on other
 * threads (sharp) count their wall time.
 */
export default async function runTask({ task, input }) {
  const fn = tasks[task];
  if (typeof fn !== 'function') throw new Error(`Unknown worker task: ${task}`);
  const started = performance.now();
  const cpuBefore = threadCpuMs();
  const pending = fn(input);
  const cpuAfter = pending instanceof Promise ? undefined : threadCpuMs();
  const result = await pending;
  const ms = performance.now() - started;
  const workMs = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : ms;
  const reply = { result, ms, workMs };
  const movable = result?.[TRANSFERABLE_RESULT];
  return Array.isArray(movable) && movable.length > 0 ? moving(reply, movable) : reply;
}

/**
 * Piscina moves only what a top-level Transferable lists, so the whole `{ result, ms, workMs }` reply is
 * wrapped and the result's buffers go to the main thread without a copy (bench/RESULTS.md).
 */
function moving(reply, buffers) {
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return buffers;
    },
    get [Piscina.valueSymbol]() {
      return reply;
    },
  });
}
