// Helper processes of the push bench (the push service, the raw sender): commands over IPC, one
// answer each, and a clock all processes share.
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';

/** Wall-clock milliseconds with sub-millisecond resolution: comparable across processes on one machine. */
export const wallNow = () => performance.timeOrigin + performance.now();

export interface ChildHandle {
  pid: number;
  call<T = any>(command: string, args?: Record<string, unknown>): Promise<T>;
  /** Disconnects (the child leaves by itself) and waits for the exit, killing it after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Forks a TypeScript module of bench/ through tsx; `flag` tells the module it is the child. */
export function forkChild(file: URL, flag: string, env: NodeJS.ProcessEnv = process.env): ChildHandle {
  // 'advanced' serialization carries typed arrays as they are (receipt times).
  const child: ChildProcess = fork(file, [flag], { execArgv: ['--import', 'tsx'], env, serialization: 'advanced' });
  const pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();
  let nextId = 0;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiter?.reject(new Error(`child ${child.pid}: ${message.error}`));
    else waiter?.resolve(message.result);
  });
  child.once('exit', (code, signal) => {
    for (const { reject } of pending.values()) reject(new Error(`child ${child.pid} exited (${code ?? signal})`));
    pending.clear();
  });
  return {
    pid: child.pid!,
    call(command, args = {}) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, command, ...args });
      });
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
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
