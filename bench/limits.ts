// What the abuse limits cost a request: an authenticated `{ me }` under closed-loop load, against a
// server with every limit on (document limits, rate limits) and one with none (RATE_LIMITS=off and
// an app built without the document limits), alternating, the same database and user.
import { buildApp, type App } from '../src/server/app.ts';
import { startLoadProcess, type LoadSummary } from './graphql-load.ts';
import { countOf, describeCounts, totalOf } from './outcomes.ts';
import { benchConfig, registerUsers, type BenchContext } from './setup.ts';
import { fixed, median, table } from './stats.ts';

const SENDERS = 16;
const WARM_UP_MS = 1_000;
const DURATION_MS = 5_000;
const ROUNDS = 5;
const TARGET_SLOWDOWN = 0.05;
const ME = JSON.stringify({ query: '{ me { id username displayName status } }' });

type Variant = 'limits on' | 'limits off';
/** A run's load summary and the CPU this process (both servers; one is idle) spent in its window. */
type Run = LoadSummary & { cpuMs: number };

export async function runLimits({ databaseUrl }: BenchContext): Promise<void> {
  const apps: Record<Variant, App> = {
    'limits on': await buildApp({ config: benchConfig({ DATABASE_URL: databaseUrl, RATE_LIMITS: 'on' }) }),
    'limits off': await buildApp({ config: benchConfig({ DATABASE_URL: databaseUrl, RATE_LIMITS: 'off' }), documentLimits: false }),
  };
  const load = startLoadProcess();
  try {
    const urls = { 'limits on': (await apps['limits on'].start()).url, 'limits off': (await apps['limits off'].start()).url };
    const [user] = await registerUsers(urls['limits off'], 1, 'limits');
    const store = apps['limits on'].services.config.redisUrl ? 'Redis' : 'memory';
    console.log(`authenticated { me }, ${SENDERS} senders with one request in flight each, ${WARM_UP_MS} ms warm-up, ${DURATION_MS} ms measured, ${ROUNDS} rounds alternating; rate limits in ${store}`);
    console.log("'limits on': RATE_LIMITS=on and the document limits; 'limits off': RATE_LIMITS=off and an app built without the document limits");
    const runs: Record<Variant, Run[]> = { 'limits on': [], 'limits off': [] };
    for (let round = 0; round < ROUNDS; round += 1) {
      const order: Variant[] = round % 2 === 0 ? ['limits on', 'limits off'] : ['limits off', 'limits on'];
      for (const variant of order) {
        const senders = Array.from({ length: SENDERS }, () => ({ token: user!.accessToken, body: ME }));
        let cpu = process.cpuUsage();
        const window = { onStart: () => void (cpu = process.cpuUsage()), onEnd: () => void (cpu = process.cpuUsage(cpu)) };
        const summary = await load.run({ url: urls[variant], senders, warmUpMs: WARM_UP_MS, durationMs: DURATION_MS }, window);
        runs[variant].push({ ...summary, cpuMs: (cpu.user + cpu.system) / 1_000 });
      }
    }
    const perSecond = (run: Run) => (countOf(run.codes, 'OK') * 1_000) / run.windowMs;
    const cpuPerRequestUs = (run: Run) => (run.cpuMs * 1_000) / Math.max(1, totalOf(run.codes));
    const rows = (['limits on', 'limits off'] as const).map((variant) => {
      const rates = runs[variant].map(perSecond);
      const mid = runs[variant][rates.indexOf(median(rates))] ?? runs[variant][0]!;
      const cpu = runs[variant].map(cpuPerRequestUs);
      return [
        variant,
        fixed(median(rates), 0),
        rates.map((rate) => fixed(rate, 0)).join(' / '),
        fixed(median(cpu), 0),
        cpu.map((us) => fixed(us, 0)).join(' / '),
        fixed(mid.latencyMs.p50, 2),
        fixed(mid.latencyMs.p99, 2),
        describeCounts(mid.codes, ['OK']) || '-',
      ];
    });
    console.log(table(['variant', 'req/s (median)', 'req/s per round', 'server cpu us/req (median)', 'per round', 'p50 ms', 'p99 ms', 'errors'], rows));
    const on = median(runs['limits on'].map(perSecond));
    const off = median(runs['limits off'].map(perSecond));
    const slowdown = 1 - on / off;
    // CPU per request is what the limits add to each request, and moves less with other load on the host.
    const cpuOn = median(runs['limits on'].map(cpuPerRequestUs));
    const cpuOff = median(runs['limits off'].map(cpuPerRequestUs));
    const cpuExtra = cpuOn / cpuOff - 1;
    const failed = runs['limits on'].concat(runs['limits off']).reduce((sum, summary) => sum + totalOf(summary.codes) - countOf(summary.codes, 'OK'), 0);
    console.log(`target <= ${TARGET_SLOWDOWN * 100} % more server CPU per request with the limits: ${cpuExtra <= TARGET_SLOWDOWN ? 'PASS' : 'MISS'} (${fixed(cpuExtra * 100)} %: ${fixed(cpuOn, 0)} vs ${fixed(cpuOff, 0)} us)`);
    console.log(`target <= ${TARGET_SLOWDOWN * 100} % fewer requests/s with the limits: ${slowdown <= TARGET_SLOWDOWN ? 'PASS' : 'MISS'} (${fixed(slowdown * 100)} %: ${fixed(on, 0)} vs ${fixed(off, 0)} req/s; ${failed} requests failed)`);
  } finally {
    await load.close();
    await apps['limits on'].stop();
    await apps['limits off'].stop();
  }
}
