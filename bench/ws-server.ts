// A second instance of the real server in a child process, started by the idle-connections bench
// when one process may not hold all the sockets it wants (each process has its own open-file limit).
// Commands come over IPC like bench/ws-client.mjs's; DATABASE_URL comes in the environment.
import type { App } from '../src/server/app.ts';
import { benchConfig, startBenchApp } from './setup.ts';
import { sampleThisProcess } from './ws-clients.ts';

let app: App | undefined;

const commands: Record<string, (args: Record<string, unknown>) => Promise<unknown>> = {
  /** `env`: config overrides (the fan-out's second instance: Redis, the messages' key). */
  async start({ env }) {
    const started = await startBenchApp(benchConfig({ DATABASE_URL: process.env.DATABASE_URL!, ...(env as Record<string, string> | undefined) }));
    app = started.app;
    return { url: started.url };
  },
  sample: async () => sampleThisProcess(),
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
