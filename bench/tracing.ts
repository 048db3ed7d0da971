// What tracing costs a request: an authenticated `{ me }` under closed-loop load against three
// servers, each in a child process of its own (tracing on registers a process-wide context manager,
// which would tax a server beside it): 'baseline' and 'off' are both built without
// OTEL_EXPORTER_OTLP_ENDPOINT, which registers no tracing plugin and loads no SDK, so their
// difference is the noise floor; 'on' exports every span to an OTLP/HTTP receiver in this process.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startLoadProcess, type LoadSummary } from './graphql-load.ts';
import { countOf, describeCounts, totalOf } from './outcomes.ts';
import { forkChild } from './push-child.ts';
import { registerUsers, type BenchContext } from './setup.ts';
import { fixed, median, table } from './stats.ts';
import type { ProcessSample } from './ws-clients.ts';

const SENDERS = 16;
const WARM_UP_MS = 1_000;
const DURATION_MS = 5_000;
const ROUNDS = 5;
const TARGETS = { off: 0.03, on: 0.15 } as const;
const ME = JSON.stringify({ query: 'query Me { me { id username displayName status } }' });

const VARIANTS = ['baseline', 'off', 'on'] as const;
type Variant = (typeof VARIANTS)[number];
type Run = LoadSummary & { cpuMs: number };

export async function runTracing({ databaseUrl }: BenchContext): Promise<void> {
  let exportedBatches = 0;
  const receiver = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      exportedBatches += 1;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const env = (tracing: boolean) => ({ ...process.env, DATABASE_URL: databaseUrl, OTEL_EXPORTER_OTLP_ENDPOINT: tracing ? endpoint : '' });
  const servers = Object.fromEntries(VARIANTS.map((variant) => [variant, forkChild(new URL('./ws-server.ts', import.meta.url), '--tracing-bench', env(variant === 'on'))])) as Record<
    Variant,
    ReturnType<typeof forkChild>
  >;
  const load = startLoadProcess();
  try {
    const urls = {} as Record<Variant, string>;
    for (const variant of VARIANTS) urls[variant] = (await servers[variant].call<{ url: string }>('start')).url;
    const [user] = await registerUsers(urls.baseline, 1, 'tracing');
    console.log(`authenticated { me }, ${SENDERS} senders with one request in flight each, ${WARM_UP_MS} ms warm-up, ${DURATION_MS} ms measured, ${ROUNDS} rounds in rotating order`);
    console.log("each server in a child process; 'baseline' and 'off': no OTEL_EXPORTER_OTLP_ENDPOINT (no plugin, no SDK); 'on': spans exported to a local OTLP/HTTP receiver");
    const runs: Record<Variant, Run[]> = { baseline: [], off: [], on: [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = VARIANTS.map((_, index) => VARIANTS[(index + round) % VARIANTS.length]!);
      for (const variant of order) {
        const senders = Array.from({ length: SENDERS }, () => ({ token: user!.accessToken, body: ME }));
        const before = await servers[variant].call<ProcessSample>('sample');
        const summary = await load.run({ url: urls[variant], senders, warmUpMs: WARM_UP_MS, durationMs: DURATION_MS }, { onStart: () => {}, onEnd: () => {} });
        const after = await servers[variant].call<ProcessSample>('sample');
        runs[variant].push({ ...summary, cpuMs: (after.cpuMicros - before.cpuMicros) / 1_000 });
      }
    }
    const perSecond = (run: Run) => (countOf(run.codes, 'OK') * 1_000) / run.windowMs;
    // Warm-up included: the server's CPU is sampled around the whole run.
    const cpuPerRequestUs = (run: Run) => (run.cpuMs * 1_000) / Math.max(1, totalOf(run.codes) * ((WARM_UP_MS + DURATION_MS) / DURATION_MS));
    const rows = VARIANTS.map((variant) => {
      const rates = runs[variant].map(perSecond);
      const { latencyMs, codes } = runs[variant][rates.indexOf(median(rates))] ?? runs[variant][0]!;
      const cpu = fixed(median(runs[variant].map(cpuPerRequestUs)), 0);
      return [variant, fixed(median(rates), 0), fixed(latencyMs.p50, 2), fixed(latencyMs.p99, 2), rates.map((rate) => fixed(rate, 0)).join(' / '), cpu, describeCounts(codes, ['OK']) || '-'];
    });
    console.log(table(['variant', 'req/s (median)', 'p50 ms', 'p99 ms', 'req/s per round', 'server cpu us/req (median, approx.)', 'errors'], rows));
    const baseline = median(runs.baseline.map(perSecond));
    const baselineCpu = median(runs.baseline.map(cpuPerRequestUs));
    for (const variant of ['off', 'on'] as const) {
      const slowdown = 1 - median(runs[variant].map(perSecond)) / baseline;
      const cpuExtra = median(runs[variant].map(cpuPerRequestUs)) / baselineCpu - 1;
      const verdict = slowdown <= TARGETS[variant] ? 'PASS' : 'MISS';
      console.log(`${variant} vs baseline: target <= ${TARGETS[variant] * 100} % fewer requests/s: ${verdict} (${fixed(slowdown * 100)} %); server CPU per request ${fixed(cpuExtra * 100)} %`);
    }
    console.log(`OTLP export requests received from 'on': ${exportedBatches}`);
  } finally {
    await load.close();
    for (const variant of VARIANTS) await servers[variant].stop();
    receiver.close();
  }
}
