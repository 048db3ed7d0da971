// A second instance of the real server in a child process, started by the idle-connections bench
// when one process may not hold all the sockets it wants (each process has its own open-file limit).
// Commands come over IPC like bench/ws-client.mjs's; DATABASE_URL comes in the environment.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { App } from '../src/server/app.ts';
import { benchConfig, startBenchApp } from './setup.ts';
import { sampleThisProcess } from './ws-clients.ts';

let app: App | undefined;

// BENCH_ENABLE_ALS=1 (the tracing bench's 'context only' variant): an AsyncLocalStorage entered at
// start, which turns on Node's promise hooks as OpenTelemetry's context manager does, without any
// span or plugin, so its share of tracing's cost shows on its own.
if (process.env.BENCH_ENABLE_ALS === '1') new AsyncLocalStorage<object>().enterWith({});

interface LoopArgs {
  token: string;
  body: string;
  count: number;
  concurrency: number;
}

/**
 * `count` requests through `yoga.fetch` in this process (no socket, no load client), `concurrency`
 * at a time, and the process CPU they took: what one request costs, with little else running.
 */
async function loop({ token, body, count, concurrency }: LoopArgs) {
  const yoga = app!.yoga;
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  let left = count;
  let failures = 0;
  const start = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left-- > 0) {
        const response = await yoga.fetch('http://kocmoc.bench/graphql', { method: 'POST', headers, body });
        const text = await response.text();
        if (!response.ok || text.includes('"errors"')) failures += 1;
      }
    }),
  );
  const used = process.cpuUsage(start);
  return { cpuMicros: used.user + used.system, wallMs: performance.now() - started, failures };
}

const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  /** `env`: config overrides (the fan-out's second instance: Redis, the messages' key). */
  async start({ env }) {
    const started = await startBenchApp(benchConfig({ DATABASE_URL: process.env.DATABASE_URL!, ...(env as Record<string, string> | undefined) }));
    app = started.app;
    return { url: started.url };
  },
  sample: async () => sampleThisProcess(),
  loop: (args) => loop(args as unknown as LoopArgs),
  /** CPU so far, without sampleThisProcess's collections (they would cost the phase being measured). */
  async cpu() {
    const cpu = process.cpuUsage();
    return { cpuMicros: cpu.user + cpu.system };
  },
  async stop() {
    await app?.stop();
    app = undefined;
    return {};
  },
};

process.on('message', async ({ id, command, ...args }: { id: number; command: string } & Record<string, unknown>) => {
  try {
    process.send!({ id, result: await commands[command]!(args) });
  } catch (error) {
    process.send!({ id, error: String((error as Error)?.stack ?? error) });
  }
});

// The bench is done with us (or died): stop cleanly, then leave.
process.on('disconnect', () => {
  void (app?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});
