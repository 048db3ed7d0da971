// Worker processes for the push bench (`node --import tsx src/worker-main.ts`, as `npm run worker`
// runs it), and CPU readings of every process involved, from /proc (Linux; elsewhere NaN).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { hostBusyShare, sampleHostCpu, type HostCpuSample } from './host-cpu.ts';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Linux reports per-process CPU in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const MS_PER_TICK = 10;
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 20_000;

export interface WorkerProcess {
  pid: number;
  /** Log lines at warn or above (e.g. failed jobs). */
  warnings: string[];
  /** SIGTERM (running jobs finish), then SIGKILL after a grace; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts one worker process and resolves once it takes jobs. */
export function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/worker-main.ts'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const warnings: string[] = [];
  const tail: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`worker did not start in ${START_TIMEOUT_MS / 1_000} s`)), START_TIMEOUT_MS);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}; last output:\n${tail.join('\n')}`));
    };
    const onEarlyExit = (code: number | null) => fail(new Error(`worker exited with ${code}`));
    child.once('exit', onEarlyExit);
    // Pipes are read to the end so a chatty worker never blocks on a full pipe.
    const onData = (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (!line) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        if (/"level":(4|5|6)0/.test(line) || !line.startsWith('{')) warnings.push(line);
        if (line.includes('notification worker started')) {
          clearTimeout(timer);
          child.off('exit', onEarlyExit);
          resolve({
            pid: child.pid!,
            warnings,
            async stop() {
              if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
              child.kill('SIGTERM');
              const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
              const code = await exited;
              clearTimeout(killer);
              return code;
            },
          });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
  });
}

export interface CpuReading {
  at: number;
  host: HostCpuSample | undefined;
  /** CPU so far of each named process. */
  processes: Record<string, number>;
  /** CPU so far of each PostgreSQL backend connected to the bench database, by pid. */
  postgres: Map<number, number>;
}

/** Reads the CPU of named pids (a name may cover several, e.g. two workers) and of the database's backends. */
export function readCpu(pids: Record<string, number[]>, databaseName: string): CpuReading {
  const processes: Record<string, number> = {};
  for (const [name, list] of Object.entries(pids)) processes[name] = list.reduce((sum, pid) => sum + processCpuMs(pid), 0);
  return { at: performance.now(), host: sampleHostCpu(), processes, postgres: backendCpuMs(databaseName) };
}

export interface CpuUse {
  wallMs: number;
  hostBusy: number;
  processes: Record<string, number>;
  postgres: number;
}

export function cpuBetween(before: CpuReading, after: CpuReading): CpuUse {
  const processes: Record<string, number> = {};
  for (const name of Object.keys(after.processes)) processes[name] = after.processes[name]! - (before.processes[name] ?? 0);
  // Backends that connected in between count in full: all of their CPU is in the window.
  const postgres = after.postgres.size === 0 ? Number.NaN : [...after.postgres].reduce((sum, [pid, ms]) => sum + ms - (before.postgres.get(pid) ?? 0), 0);
  return { wallMs: after.at - before.at, hostBusy: hostBusyShare(before.host, after.host), processes, postgres };
}

/** utime + stime of a process (all its threads) so far; NaN if it is gone or /proc is missing. */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state is field 3, utime and stime fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  } catch {
    return Number.NaN;
  }
}

/** The local redis-server's pid, if there is one (its CPU is shared with anyone else using it). */
export function findProcess(command: string): number | undefined {
  for (const entry of listProcesses()) {
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === command) return Number(entry);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** Backends title themselves "postgres: … user database host …". */
function backendCpuMs(databaseName: string): Map<number, number> {
  const usage = new Map<number, number>();
  for (const entry of listProcesses()) {
    try {
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!title.startsWith('postgres:') || !title.includes(` ${databaseName} `)) continue;
      const ms = processCpuMs(Number(entry));
      if (!Number.isNaN(ms)) usage.set(Number(entry), ms);
    } catch {
      // The process ended while we looked.
    }
  }
  return usage;
}

function listProcesses(): string[] {
  try {
    return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return [];
  }
}
