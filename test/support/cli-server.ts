// The API started the way `npm start` starts it (`node --import tsx src/main.ts`), as a child
// process, for the tests of the command line.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface CliServer {
  child: ChildProcess;
  /** Its GraphQL URL, from the "listening" log line. */
  url: string;
  /** Its JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
}

/**
 * Starts src/main.ts in `cwd` with exactly `env` (nothing of the test process's own settings) and
 * resolves once it listens; `children` collects the process so the caller can kill it afterwards.
 */
export function startCliServer(cwd: string, env: Record<string, string>, children: ChildProcess[], timeoutMs = 90_000): Promise<CliServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd, env: { LOG_LEVEL: 'info', ...env } });
  children.push(child);
  const output: string[] = [];
  const logs: Array<Record<string, unknown>> = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output.join('\n')}`)), timeoutMs);
    child.stderr!.on('data', (chunk) => output.push(String(chunk)));
    child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${output.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      try {
        const entry = JSON.parse(line);
        logs.push(entry);
        if (entry.url && /listening/.test(entry.msg)) {
          clearTimeout(timer);
          resolve({ child, url: entry.url, logs });
        }
      } catch {
        // not a log line
      }
    });
  });
}

/** SIGTERM, as an orchestrator stops it; resolves with the exit code. */
export async function stopCliServer(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}
