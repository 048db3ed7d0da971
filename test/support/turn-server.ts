// A real coturn (Debian's `coturn` package; .ci/run installs it) on loopback for the calls tests,
// with the TURN REST API's shared secret (`use-auth-secret`), and what its log says it did.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TurnServer {
  port: number;
  /** Relay allocations it granted (a credential it accepted). */
  allocations(): number;
  /** Requests it refused with 401 for a named user (a credential that did not check). */
  unauthorized(): number;
  stop(): Promise<void>;
}

export async function startTurnServer({ port, secret }: { port: number; secret: string }): Promise<TurnServer> {
  const dir = mkdtempSync(join(tmpdir(), 'kocmoc-turn-'));
  const logFile = join(dir, 'turn.log');
  // Below the ephemeral range (32768-60999), where an outgoing connection could hold a relay port.
  const relayPorts = 10_000 + (port % 50) * 100;
  const args = [
    '-n', // no configuration file: everything is below
    '--verbose',
    '--use-auth-secret',
    `--static-auth-secret=${secret}`,
    '--realm=kocmoc.test',
    '--listening-ip=127.0.0.1',
    '--relay-ip=127.0.0.1',
    `--listening-port=${port}`,
    `--min-port=${relayPorts}`,
    `--max-port=${relayPorts + 99}`,
    '--allow-loopback-peers',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    `--log-file=${logFile}`,
    '--simple-log',
    `--pidfile=${join(dir, 'turnserver.pid')}`,
    `--userdb=${join(dir, 'turndb')}`,
  ];
  const child: ChildProcess = spawn('turnserver', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) => child.once('error', (error) => reject(new Error(`could not start turnserver (apt-get install coturn): ${error.message}`))));
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + 10_000;
  while (!/Total General servers/.test(log())) {
    if (Date.now() > deadline) throw new Error(`turnserver did not start:\n${log().slice(-2_000)}`);
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 50)), spawnError]);
  }
  const count = (pattern: RegExp) => log().match(pattern)?.length ?? 0;
  return {
    port,
    allocations: () => count(/incoming packet ALLOCATE processed, success/g),
    unauthorized: () => count(/user <[^>]+>: incoming packet message processed, error 401/g),
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
