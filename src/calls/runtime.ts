// What calls keep per process: the deadline timers, the order signals leave in, and the database writes event streams start as they close (shutdown waits for them).
import type { Config } from '../env.ts';
import type { Prisma, PrismaClient } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { createCallTimers, type CallJobRunner, type CallTimers, type CallTimersOptions } from './timers.ts';

export interface CallRuntime {
  timers: CallTimers;
  /**
   * Runs `work` after every earlier call with the same key has settled. Signals from one device
   * to a call go through one key, entered before their first await, so they are published (and,
   * through one bus connection, delivered) in the order they were sent.
   */
  inOrder<T>(key: string, work: () => Promise<T>): Promise<T>;
  /**
   * What signals of a call are checked against, read through `load` and reused for SIGNAL_FACTS_MS:
   * a call's set-up relays dozens of signals in a second or two.
   */
  signalFacts<T>(callId: string, load: () => Promise<T>): Promise<T>;
  /** The call changed (here, or an instance said so): the next signal reads it afresh. */
  forgetCall(callId: string): void;
  /** Keeps `work` counted until it settles: `stop` waits for it before the database closes. */
  track(work: Promise<unknown>): void;
  /**
   * These devices' calls lost them now (`which` narrows the participations): each leaves with
   * FAILED unless it comes back within CALL_RECONNECT_SECONDS. Devices already away keep their time.
   */
  markAway(which: Prisma.CallParticipantWhereInput): void;
  /**
   * A user has no connection left on any instance (presence decided it): their devices are away.
   * Covers an instance that died with their sockets, whose streams never saw themselves close.
   */
  userOffline(userId: string): void;
  start(run: CallJobRunner): Promise<void>;
  stop(): Promise<void>;
}

/** How long a call's signal facts are reused (signals/relay decides refusals afresh). */
const SIGNAL_FACTS_MS = 1_000;
const SIGNAL_FACTS_MAX = 10_000;

export interface CallRuntimeOptions {
  config: Pick<Config, 'calls' | 'redisUrl' | 'jobs'>;
  prisma: PrismaClient;
  logger: Logger;
  /** With tracing on: each deadline runs in a job span (calls/timers.ts). Default none. */
  tracer?: CallTimersOptions['tracer'];
}

export function createCallRuntime({ config, prisma, logger, tracer }: CallRuntimeOptions): CallRuntime {
  const timers = createCallTimers({ prisma, logger, redisUrl: config.redisUrl, prefix: config.jobs.queuePrefix, reconnectMs: config.calls.reconnectMs, tracer });
  const tails = new Map<string, Promise<unknown>>();
  const pending = new Set<Promise<unknown>>();
  let stopped = false;
  const facts = new Map<string, { until: number; value: Promise<unknown> }>();
  const markAway = async (which: Prisma.CallParticipantWhereInput) => {
    // Presence still reports as it stops; the calls' deadlines are then in the database already.
    if (stopped) return;
    const now = new Date();
    const away = await prisma.callParticipant.updateManyAndReturn({
      where: { AND: [which, { leftAt: null, disconnectedAt: null }] },
      data: { disconnectedAt: now },
      select: { id: true, callId: true },
    });
    const deadline = new Date(now.getTime() + config.calls.reconnectMs);
    await Promise.all(away.map((p) => timers.schedule({ kind: 'reconnect', callId: p.callId, participantId: p.id }, deadline)));
  };
  const runtime: CallRuntime = {
    timers,
    inOrder(key, work) {
      const result = (tails.get(key) ?? Promise.resolve()).then(work);
      const tail = result.catch(() => {});
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return result;
    },
    signalFacts(callId, load) {
      const now = Date.now();
      const known = facts.get(callId);
      if (known && known.until > now) return known.value as ReturnType<typeof load>;
      if (facts.size >= SIGNAL_FACTS_MAX) for (const [id, entry] of facts) if (entry.until <= now || facts.size >= SIGNAL_FACTS_MAX) facts.delete(id);
      const value = load();
      facts.set(callId, { until: now + SIGNAL_FACTS_MS, value });
      value.catch(() => facts.delete(callId));
      return value;
    },
    forgetCall(callId) {
      facts.delete(callId);
    },
    track(work) {
      const done = work.catch((error: unknown) => logger.warn({ err: error }, 'call bookkeeping failed')).finally(() => pending.delete(done));
      pending.add(done);
    },
    markAway(which) {
      runtime.track(markAway(which));
    },
    userOffline(userId) {
      runtime.track(markAway({ userId }));
    },
    start: (run) => timers.start(run),
    async stop() {
      while (pending.size > 0) await Promise.all(pending);
      stopped = true;
      await timers.stop();
    },
  };
  return runtime;
}
