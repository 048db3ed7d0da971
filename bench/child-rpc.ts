// The parent's side of a bench child process that answers `{ id, command, ...args }` with
// `{ id, result | error }` over IPC.
import type { ChildProcess } from 'node:child_process';

export interface ChildRpc {
  pid: number;
  call<T = any>(command: string, args?: Record<string, unknown>): Promise<T>;
  /** Disconnects IPC (the child exits by itself) and waits for the exit, killing it after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function rpc(child: ChildProcess): ChildRpc {
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
      // A stuck child still goes, a little later.
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
