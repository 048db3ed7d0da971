// A second instance of the real server in a child process, started by the idle-connections bench
// when one process may not hold all the sockets it wants (each process has its own open-file limit).
// Commands come over IPC like bench/ws-client.mjs's; DATABASE_URL comes in the environment.
import type { App } from '../src/server/app.ts';
import { benchConfig, startBenchApp } from './setup.ts';
import { sampleThisProcess } from './ws-clients.ts';

let app: App | undefined;

const commands: Record<string, () => Promise<unknown>> = {
  async start() {
    const started = await startBenchApp(benchConfig({ DATABASE_URL: process.env.DATABASE_URL! }));
    app = started.app;
    return { url: started.url };
  },
  sample: async () => sampleThisProcess(),
  async stop() {
    await app?.stop();
    app = undefined;
    return {};
  },
};

process.on('message', async ({ id, command }: { id: number; command: string }) => {
  try {
    process.send!({ id, result: await commands[command]!() });
  } catch (error) {
    process.send!({ id, error: String((error as Error)?.stack ?? error) });
  }
});

// The bench is done with us (or died): stop cleanly, then leave.
process.on('disconnect', () => {
  void (app?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
});
