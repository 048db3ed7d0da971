// The push bench's baseline: Web Push requests straight from a tight loop in one process, with the
// product's own sender (src/notifications/web-push.ts: web-push, aes128gcm, VAPID) and the same
// options, but no queue and no database. A child process like a worker, trusting the push
// service's certificate the same way (NODE_EXTRA_CA_CERTS, default HTTPS agent).
import type { Config } from '../src/env.ts';
import { createPushSender } from '../src/notifications/web-push.ts';
import { forkChild, serveCommands, wallNow, type ChildHandle } from './push-child.ts';
import type { PushDeviceKeys } from './push-endpoint.ts';

const CHILD_FLAG = '--push-raw-child';

export interface RawSendSpec {
  targets: PushDeviceKeys[];
  /** Requests in all, round-robin over the targets. */
  total: number;
  /** Requests in flight at once. */
  concurrency: number;
  payload: string;
  topic: string;
}

export interface RawSendResult {
  sent: number;
  failures: Record<string, number>;
  startedAt: number;
  finishedAt: number;
}

export interface RawSender {
  pid: number;
  send(spec: RawSendSpec): Promise<RawSendResult>;
  close(): Promise<void>;
}

export function startRawSender(vapid: Config['push']['vapid'], certFile: string): RawSender {
  const child: ChildHandle = forkChild(new URL(import.meta.url), CHILD_FLAG, {
    ...process.env,
    NODE_EXTRA_CA_CERTS: certFile,
    BENCH_VAPID: JSON.stringify(vapid),
  });
  return { pid: child.pid, send: (spec) => child.call('send', { spec }), close: () => child.stop() };
}

// ---- child side ----

function runRawSender() {
  const send = createPushSender({ vapid: JSON.parse(process.env.BENCH_VAPID!), endpoints: { allowPrivate: true } });
  serveCommands({
    async send({ spec }: { spec: RawSendSpec }): Promise<RawSendResult> {
      const failures: Record<string, number> = {};
      let next = 0;
      let sent = 0;
      const startedAt = wallNow();
      const lane = async () => {
        while (next < spec.total) {
          const target = spec.targets[next++ % spec.targets.length]!;
          const outcome = await send(target, spec.payload, { topic: spec.topic, ttlSeconds: 24 * 3600, urgency: 'normal' });
          if (outcome.kind === 'sent') sent++;
          else failures[`${outcome.kind} ${outcome.statusCode}`] = (failures[`${outcome.kind} ${outcome.statusCode}`] ?? 0) + 1;
        }
      };
      await Promise.all(Array.from({ length: spec.concurrency }, lane));
      return { sent, failures, startedAt, finishedAt: wallNow() };
    },
  });
}

if (process.argv[2] === CHILD_FLAG && process.send) runRawSender();
