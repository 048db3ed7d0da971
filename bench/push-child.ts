// Helper processes of the push bench (the push service, the raw sender): commands over IPC, one
// answer each, and a clock all processes share.
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { rpc, type ChildRpc } from './child-rpc.ts';

/** Wall-clock milliseconds with sub-millisecond resolution: comparable across processes on one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();

export type ChildHandle = ChildRpc;

/**
 * Forks a TypeScript module of bench/ through tsx; `flag` tells the module it is the child.
 * BENCH_CPU_PROF_DIR=<dir> writes a V8 CPU profile of every child there (Node refuses --cpu-prof in NODE_OPTIONS).
 */
export function forkChild(file: URL, flag: string, env: NodeJS.ProcessEnv = process.env): ChildHandle {
  const profile = process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
  // 'advanced' serialization carries typed arrays as they are (receipt times).
  return rpc(fork(file, [flag], { execArgv: ['--import', 'tsx', ...profile], env, serialization: 'advanced' }));
}

/** The child's side: runs each command, answers, and leaves when the parent disconnects (or dies). */
export function serveCommands(commands: Record<string, (args: any) => Promise<unknown>>, cleanUp: () => Promise<void> = async () => {}) {
  process.on('message', async ({ id, command, ...args }: { id: number; command: string }) => {
    try {
      const handler = commands[command];
      if (!handler) throw new Error(`unknown command ${command}`);
      process.send!({ id, result: await handler(args) });
    } catch (error) {
      process.send!({ id, error: String((error as Error)?.stack ?? error) });
    }
  });
  process.on('disconnect', () => {
    void cleanUp().finally(() => process.exit(0));
  });
}

/** CPU so far (user + system) of this process, all threads, in ms. */
export function ownCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1_000;
}
