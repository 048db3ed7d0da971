// The servers of a fan-out run: our app in this process (instance A, which the sender posts to),
// optionally a second instance B in a child process (bench/ws-server.ts) on the same database and
// Redis, so subscriber sockets can be split over two event loops (and two open-file limits). Each
// process's CPU is read per phase; A's event-loop delay shows how long its loop was held at once
// (what the sender's request and every other HTTP request waited behind).
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { App } from '../src/server/app.ts';
import { BENCH_MESSAGE_KEY, benchConfig, startBenchApp } from './setup.ts';
import { startServerProcess, type ChildRpc } from './ws-clients.ts';

export interface FanoutServers {
  /** Where subscriber process i connects: urls[i % urls.length]. */
  urls: string[];
  /** The sender's instance (A, this process). */
  senderUrl: string;
  labels: string[];
  /** CPU so far of each process, µs, in the order of `labels`. */
  cpuMicros(): Promise<number[]>;
  app: App;
  stop(): Promise<void>;
}

/** Instance A here; with `processes` 2, instance B in a child. With `redisUrl` both use Redis (required for 2). */
export async function startFanoutServers(databaseUrl: string, { processes = 1, redisUrl }: { processes?: number; redisUrl?: string }): Promise<FanoutServers> {
  if (processes > 1 && !redisUrl) throw new Error('two server processes need REDIS_URL (the cross-instance event bus)');
  const env: Record<string, string> = { DATABASE_URL: databaseUrl, MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY, ...(redisUrl ? { REDIS_URL: redisUrl, PUSH_ENABLED: 'false' } : {}) };
  const { app, url } = await startBenchApp(benchConfig(env));
  const others: Array<ChildRpc & { url: string }> = [];
  try {
    for (let i = 1; i < processes; i++) others.push(await startServerProcess(databaseUrl, env));
  } catch (error) {
    await Promise.all([app.stop(), ...others.map((other) => other.stop())]);
    throw error;
  }
  return {
    urls: [url, ...others.map((other) => other.url)],
    senderUrl: url,
    labels: ['A (bench process)', ...others.map((other, i) => `${String.fromCharCode(66 + i)} (pid ${other.pid})`)],
    async cpuMicros() {
      const own = process.cpuUsage();
      const theirs = await Promise.all(others.map((other) => other.call<{ cpuMicros: number }>('cpu')));
      return [own.user + own.system, ...theirs.map((sample) => sample.cpuMicros)];
    },
    app,
    async stop() {
      await Promise.all([app.stop(), ...others.map((other) => other.stop())]);
    },
  };
}

/** This process's event-loop delay over a phase: the longest and the p99 hold, ms. */
export function watchEventLoop(): { stop(): { maxMs: number; p99Ms: number } } {
  const histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  return {
    stop() {
      histogram.disable();
      // Each sample includes the 5 ms resolution timer's own interval.
      return { maxMs: Math.max(0, histogram.max / 1e6 - 5), p99Ms: Math.max(0, histogram.percentile(99) / 1e6 - 5) };
    },
  };
}
