// `npm run worker` (src/worker-main.ts) as a child process of a test: the API's keys and database,
// the test's Redis target and queue prefix, trusting the local push service's certificate, so a
// test can SIGKILL it mid-job and start another.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { App } from '../../src/server/app.ts';
import type { PushService } from './push-service.ts';

export interface WorkerTarget {
  /** The API whose database, message key, VAPID keys and JWT secret the worker takes. */
  api: App;
  push: Pick<PushService, 'certFile'>;
  /** `{ REDIS_URL }` or `{ REDIS_CLUSTER_NODES }`, as the API was started with. */
  redisEnv: Record<string, string>;
  /** The API's JOB_QUEUE_PREFIX. */
  queuePrefix: string;
}

/** Spawns the worker process; `extra` is added to (and overrides) its environment. */
export function spawnWorker({ api, push, redisEnv, queuePrefix }: WorkerTarget, extra: Record<string, string> = {}): ChildProcess {
  const { config } = api.services;
  const env = {
    PATH: process.env.PATH ?? '',
    NODE_EXTRA_CA_CERTS: push.certFile,
    DATABASE_URL: api.databaseUrl,
    ...redisEnv,
    JOB_QUEUE_PREFIX: queuePrefix,
    PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true',
    MESSAGE_ENCRYPTION_KEY: config.messageEncryption.keys[config.messageEncryption.currentKeyId]!.toString('base64'),
    VAPID_PUBLIC_KEY: config.push.vapid.publicKey,
    VAPID_PRIVATE_KEY: config.push.vapid.privateKey,
    VAPID_SUBJECT: config.push.vapid.subject,
    JWT_SECRET: config.auth.jwtSecret,
    ...extra,
  };
  return spawn(process.execPath, ['--import', 'tsx', 'src/worker-main.ts'], { cwd: join(import.meta.dirname, '..', '..'), env });
}

/**
 * A worker process with a 2 s JOB_LOCK_DURATION (a killed one's job is taken over within seconds),
 * resolved once it logs that it started; its log lines go to `lines`.
 */
export function startWorker(target: WorkerTarget, env: Record<string, string> = {}, lines: string[] = []): Promise<ChildProcess> {
  const child = spawnWorker(target, { JOB_LOCK_DURATION: '2s', LOG_LEVEL: 'info', ...env });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('worker did not start within 30 s'));
    }, 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line);
      if (line.includes('notification worker started')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

/** SIGKILLs `child` (no shutdown of its own: its jobs stay locked until the lock expires) and waits for its exit. */
export async function killWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}
