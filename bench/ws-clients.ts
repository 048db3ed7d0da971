// The parent's side of the WebSocket benches' child processes: client processes (bench/ws-client.mjs),
// a second server instance (bench/ws-server.ts), and what a server process looks like from outside.
import { fork } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { rpc, type ChildRpc } from './child-rpc.ts';

export type { ChildRpc };

/** A client process whose sockets all leave from `localAddress` (any of 127.0.0.0/8 works on Linux). */
export function startClientProcess(localAddress: string): ChildRpc {
  // 'advanced' serialization carries typed arrays and bigints (latencies, hrtime stamps) as they are.
  return rpc(fork(new URL('./ws-client.mjs', import.meta.url), [localAddress], { serialization: 'advanced', execArgv: [] }));
}

/** Another instance of the real server in a process of its own, on the same database. */
export async function startServerProcess(databaseUrl: string, env: Record<string, string> = {}): Promise<ChildRpc & { url: string }> {
  const child = rpc(
    fork(new URL('./ws-server.ts', import.meta.url), [], {
      serialization: 'advanced',
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, DATABASE_URL: databaseUrl },
    }),
  );
  const { url } = await child.call<{ url: string }>('start', { env });
  return { ...child, url };
}

export interface ProcessSample {
  rssBytes: number;
  heapUsedBytes: number;
  externalBytes: number;
  openFds: number;
  cpuMicros: number;
}

/** Memory after a full collection (what connections keep, not garbage), open descriptors, CPU so far. */
export function sampleThisProcess(): ProcessSample {
  collectGarbage();
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return {
    rssBytes: memory.rss,
    heapUsedBytes: memory.heapUsed,
    externalBytes: memory.external + memory.arrayBuffers,
    openFds: readdirSync('/proc/self/fd').length,
    cpuMicros: cpu.user + cpu.system,
  };
}

let gc: (() => void) | undefined;

/** `global.gc` without having to start node with --expose-gc (the bench runner does not). */
function collectGarbage() {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  // Twice: the first pass may only finalize what the second frees.
  gc();
  gc();
}

/**
 * How many files (sockets) one process may hold open: the soft limit, which Node raises to the hard
 * limit at startup, and which accept() runs into.
 */
export function openFileLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((row) => row.startsWith('Max open files'));
  const soft = line?.trim().split(/\s+/)[3];
  return soft === undefined || soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

/** Loopback source addresses, one per client process: 127.0.0.2, 127.0.0.3, … */
export const sourceAddress = (index: number) => `127.0.0.${2 + index}`;

/** Splits `items` into consecutive chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
}
