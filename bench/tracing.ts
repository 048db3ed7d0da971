// What tracing costs a request: an authenticated `{ me }` under closed-loop load against servers
// each in a child process of its own (tracing on registers a process-wide context manager, which
// would tax a server beside it). 'baseline' and 'off' are both built without
// OTEL_EXPORTER_OTLP_ENDPOINT, which registers no tracing plugin and loads no SDK: their gap is
// what this machine's noise alone makes of two identical servers. 'on' exports every span to an
// OTLP/HTTP receiver in this process; 'on 10 %' samples one trace in ten (parentbased_traceidratio).
// TRACING_BENCH_COMPARE_DIR=<another checkout> adds 'on (compare)', that checkout's server with
// every span exported, interleaved with ours: before/after on one busy machine in one run.
//
// Every round runs each variant once, back to back in rotating order, and each variant is read
// against the baseline of the same round (a paired ratio), so a machine that slows down between
// rounds moves both sides of the ratio. The verdict takes the median ratio over the rounds and
// prints the spread beside it. Tried on a machine shared with other work (bench/RESULTS.md):
// 1-second rounds (x25) and loading every variant at the same time both spread two identical
// servers further apart than 3-second rounds did.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CREATE_CHAT, SEND_MESSAGE_RECEIPT } from '../test/support/operations.ts';
import { postGraphQL, startLoadProcess, type LoadSummary } from './graphql-load.ts';
import { countOf, describeCounts } from './outcomes.ts';
import { forkChild, type ChildHandle } from './push-child.ts';
import { BENCH_TEXT, registerUsers, type BenchContext } from './setup.ts';
import { fixed, median, pairedRatio, percentile, rotate, table } from './stats.ts';
import type { ProcessSample } from './ws-clients.ts';

const SENDERS = 16;
const WARM_UP_MS = 1_000;
/** The first round's: each server's JIT and pool connections warm up before anything is counted. */
const FIRST_WARM_UP_MS = 3_000;
const DURATION_MS = Number(process.env.TRACING_BENCH_DURATION_MS ?? 3_000);
const ROUNDS = Number(process.env.TRACING_BENCH_ROUNDS ?? 9);
const SAMPLED_RATIO = 0.1;
const TARGETS: Record<string, number> = { off: 0.03, on: 0.15 };
/**
 * The in-process phase: `{ me }` per variant per round (a third as many history pages), and how
 * many at a time. Short rounds, many of them: this machine's speed drifts by tens of percent
 * within seconds (two servers of one build measured 15 rounds of 1,500 requests up to 47 % apart),
 * so a round must be over before the drift moves, and the sum over rounds needs many of them.
 */
const LOOP_COUNT = Number(process.env.TRACING_BENCH_LOOP_COUNT ?? 200);
const LOOP_CONCURRENCY = 8;
const LOOP_ROUNDS = Number(process.env.TRACING_BENCH_LOOP_ROUNDS ?? 80);
const ME = JSON.stringify({ query: 'query Me { me { id username displayName status } }' });
/** What a client asks on opening a chat: the last page of its history, with each sender. */
const HISTORY_QUERY = 'query History($id: ID!) { chat(id: $id) { id title messages(last: 20) { edges { cursor node { id seq kind text createdAt editedAt sender { id username displayName } } } pageInfo { hasPreviousPage } } } }';
const HISTORY_MESSAGES = 40;
const ROOT_SPAN = '"name":"query Me"';

interface Variant {
  name: string;
  /** The checkout whose bench/ws-server.ts runs this variant (ours when unset). */
  checkout?: string;
  env: Record<string, string>;
}

type Run = LoadSummary & { cpuMs: number };

/** `"name":"query Me"` spans per `service.name` in the OTLP/JSON bodies received. */
function startReceiver() {
  const rootSpans = new Map<string, number>();
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const service = /"service\.name","value":\{"stringValue":"([^"]+)"/.exec(body)?.[1] ?? '?';
      let count = 0;
      for (let at = body.indexOf(ROOT_SPAN); at !== -1; at = body.indexOf(ROOT_SPAN, at + 1)) count += 1;
      rootSpans.set(service, (rootSpans.get(service) ?? 0) + count);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return { receiver, rootSpans };
}

const percent = (ratio: number) => `${fixed(ratio * 100)} %`;

/**
 * CPU per request with no socket and no load client: each server runs `workload.count` requests
 * through its own yoga.fetch (bench/ws-server.ts 'loop') while the others idle, in rotating rounds, and
 * reports the process CPU they took. The HTTP phase's closed loop shares 2 cores between the load
 * process, PostgreSQL and the server, which is what spreads two identical servers apart there;
 * here only the server and PostgreSQL run.
 */
async function runInProcessPhase(variants: Variant[], servers: ChildHandle[], token: string, workload: { name: string; body: string; count: number }) {
  console.log(`in-process, ${workload.name}: ${workload.count} per variant per round through the server's own yoga.fetch, ${LOOP_CONCURRENCY} at a time; ${LOOP_ROUNDS} rounds (rotating order), one server at a time`);
  const cpuPerRequest: number[][] = variants.map(() => []);
  let failures = 0;
  for (let round = -1; round < LOOP_ROUNDS; round += 1) {
    for (const index of rotate(variants.map((_, i) => i), Math.max(0, round))) {
      const result = await servers[index]!.call<{ cpuMicros: number; failures: number }>('loop', { token, body: workload.body, count: workload.count, concurrency: LOOP_CONCURRENCY });
      // Round -1 warms every server up and is not counted.
      if (round < 0) continue;
      failures += result.failures;
      cpuPerRequest[index]!.push(result.cpuMicros / workload.count);
    }
  }
  const extras = (index: number) => cpuPerRequest[index]!.map((cpu, round) => cpu / cpuPerRequest[0]![round]! - 1);
  const spread = (values: number[]) => `${percent(percentile(values, 25))} .. ${percent(percentile(values, 75))}`;
  const overall = (index: number) => pairedRatio(cpuPerRequest[index]!, cpuPerRequest[0]!);
  const interval = ({ low, high }: { low: number; high: number }) => `${percent(low)} .. ${percent(high)}`;
  const rows = variants.map((variant, index) => [
    variant.name,
    fixed(median(cpuPerRequest[index]!), 0),
    `${fixed(Math.min(...cpuPerRequest[index]!), 0)}-${fixed(Math.max(...cpuPerRequest[index]!), 0)}`,
    index === 0 ? '-' : percent(overall(index).ratio),
    index === 0 ? '-' : interval(overall(index)),
    index === 0 ? '-' : percent(median(extras(index))),
    index === 0 ? '-' : spread(extras(index)),
  ]);
  console.log(table(['variant', 'cpu us/req (median)', 'cpu us/req range', 'CPU/req vs baseline, all rounds', '90 % interval', 'median of rounds', 'IQR of rounds'], rows));
  if (failures > 0) console.log(`failed requests: ${failures}`);
  // The verdict is the all-rounds ratio: per-round ratios are heavy-tailed (a garbage collection
  // landing in a round of a few hundred milliseconds moves it by tens of percent).
  for (const [index, variant] of variants.entries()) {
    const target = TARGETS[variant.name];
    if (target === undefined) continue;
    const extra = overall(index);
    console.log(`${variant.name} vs baseline, in-process ${workload.name}: target <= ${target * 100} % more CPU per request: ${extra.ratio <= target ? 'PASS' : 'MISS'} (all ${LOOP_ROUNDS} rounds ${percent(extra.ratio)}, 90 % interval ${interval(extra)}; median of rounds ${percent(median(extras(index)))})`);
  }
  console.log(`in-process ${workload.name} noise floor (off and baseline are one build): per-round gaps ${extras(1).map((gap) => fixed(gap * 100, 0)).join(' / ')} %; median |gap| ${percent(median(extras(1).map(Math.abs)))}`);
}

export async function runTracing({ databaseUrl }: BenchContext): Promise<void> {
  const { receiver, rootSpans } = startReceiver();
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const traced = (service: string, extra: Record<string, string> = {}) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: service, ...extra });
  const variants: Variant[] = [
    { name: 'baseline', env: { OTEL_EXPORTER_OTLP_ENDPOINT: '' } },
    { name: 'off', env: { OTEL_EXPORTER_OTLP_ENDPOINT: '' } },
    { name: 'on', env: traced('bench-on') },
    { name: 'on 10 %', env: traced('bench-sampled', { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: String(SAMPLED_RATIO) }) },
    // Not a setting of ours: baseline with Node's promise hooks on (bench/ws-server.ts), the part of
    // 'on' that OpenTelemetry's AsyncLocalStorage context manager costs before any span is made.
    { name: 'context only', env: { OTEL_EXPORTER_OTLP_ENDPOINT: '', BENCH_ENABLE_ALS: '1' } },
  ];
  const compare = process.env.TRACING_BENCH_COMPARE_DIR;
  if (compare) variants.push({ name: 'on (compare)', checkout: compare, env: traced('bench-compare') });
  const ours = fileURLToPath(new URL('..', import.meta.url));
  const servers = variants.map(({ checkout = ours, env }) =>
    forkChild(new URL('bench/ws-server.ts', `file://${checkout.replace(/\/?$/, '/')}`), '--tracing-bench', { ...process.env, DATABASE_URL: databaseUrl, ...env }),
  );
  const load = startLoadProcess();
  try {
    const urls: string[] = [];
    for (const server of servers) urls.push((await server.call<{ url: string }>('start')).url);
    // The set-up goes through every server alike (a registration each, the history sends in turn):
    // a server that alone ran it (its pool's threads started, more in its heap) measured ~10 %
    // slower per request than an identical one that did not.
    const [user] = (await Promise.all(urls.map((url, index) => registerUsers(url, 1, `tracing${index}`)))).flat();
    console.log(`authenticated { me }, ${SENDERS} senders with one request in flight each; ${ROUNDS} rounds, each running every variant once (rotating order) for ${WARM_UP_MS} ms warm-up (the first ${FIRST_WARM_UP_MS} ms) + ${DURATION_MS} ms measured`);
    console.log("each server in a child process; 'baseline' and 'off': no OTEL_EXPORTER_OTLP_ENDPOINT (no plugin, no SDK, the same code path); 'on': every span exported to a local OTLP/HTTP receiver");
    if (compare) console.log(`'on (compare)': the server of ${compare}, every span exported`);
    const runs: Run[][] = variants.map(() => []);
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const index of rotate(variants.map((_, i) => i), round)) {
        const senders = Array.from({ length: SENDERS }, () => ({ token: user!.accessToken, body: ME }));
        // Server CPU over the measured window only (the samples are taken when the load process marks it).
        let before: Promise<ProcessSample> | undefined;
        let after: Promise<ProcessSample> | undefined;
        const summary = await load.run(
          { url: urls[index]!, senders, warmUpMs: round === 0 ? FIRST_WARM_UP_MS : WARM_UP_MS, durationMs: DURATION_MS },
          { onStart: () => void (before = servers[index]!.call<ProcessSample>('sample')), onEnd: () => void (after = servers[index]!.call<ProcessSample>('sample')) },
        );
        runs[index]!.push({ ...summary, cpuMs: ((await after!).cpuMicros - (await before!).cpuMicros) / 1_000 });
      }
    }
    // Let the last batches arrive (exported each second).
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const perSecond = (run: Run) => (countOf(run.codes, 'OK') * 1_000) / run.windowMs;
    const cpuPerRequestUs = (run: Run) => (run.cpuMs * 1_000) / Math.max(1, countOf(run.codes, 'OK'));
    const baseline = runs[0]!;
    /** Per round: 1 - variant req/s ÷ baseline req/s of that round (positive: slower). */
    const slowdowns = (index: number) => runs[index]!.map((run, round) => 1 - perSecond(run) / perSecond(baseline[round]!));
    const cpuExtras = (index: number) => runs[index]!.map((run, round) => cpuPerRequestUs(run) / cpuPerRequestUs(baseline[round]!) - 1);
    const spread = (values: number[]) => `${percent(percentile(values, 25))} .. ${percent(percentile(values, 75))}`;
    const rows = variants.map((variant, index) => {
      const rates = runs[index]!.map(perSecond);
      const { latencyMs, codes } = runs[index]![rates.indexOf(median(rates))] ?? runs[index]![0]!;
      const vsBaseline = index === 0 ? ['-', '-', '-'] : [percent(median(slowdowns(index))), spread(slowdowns(index)), percent(median(cpuExtras(index)))];
      return [variant.name, fixed(median(rates), 0), `${fixed(Math.min(...rates), 0)}-${fixed(Math.max(...rates), 0)}`, ...vsBaseline, fixed(median(runs[index]!.map(cpuPerRequestUs)), 0), fixed(latencyMs.p50, 1), fixed(latencyMs.p99, 1), describeCounts(codes, ['OK']) || '-'];
    });
    console.log(
      table(['variant', 'req/s (median)', 'req/s range', 'fewer req/s vs baseline (median of rounds)', 'IQR of rounds', 'server CPU/req vs baseline (median)', 'server cpu us/req (median)', 'p50 ms', 'p99 ms', 'errors'], rows),
    );
    const noise = slowdowns(1);
    for (const [index, variant] of variants.entries()) {
      const target = TARGETS[variant.name];
      if (target === undefined) continue;
      // All rounds together (requests over time, summed), as in the in-process phase; the median beside it.
      const rates = pairedRatio(runs[index]!.map(perSecond), baseline.map(perSecond));
      const cpu = pairedRatio(runs[index]!.map(cpuPerRequestUs), baseline.map(cpuPerRequestUs));
      const slowdown = -rates.ratio;
      const verdict = slowdown <= target ? 'PASS' : 'MISS';
      console.log(
        `${variant.name} vs baseline: target <= ${target * 100} % fewer requests/s: ${verdict} (all ${ROUNDS} rounds ${percent(slowdown)}, 90 % interval ${percent(-rates.high)} .. ${percent(-rates.low)}; median of rounds ${percent(median(slowdowns(index)))}; server CPU/req ${percent(cpu.ratio)})`,
      );
    }
    // Two identical servers: how far apart this machine puts them is the resolution of every line above.
    console.log(`noise floor (off and baseline are one build): per-round gaps ${noise.map((gap) => fixed(gap * 100, 0)).join(' / ')} %; median |gap| ${percent(median(noise.map(Math.abs)))}`);
    // Operation spans exported per measured request (the warm-up's are exported too, so 'on' reads above 1).
    const spansPerRequest = (service: string, index: number) => (rootSpans.get(service) ?? 0) / runs[index]!.reduce((sum, run) => sum + countOf(run.codes, 'OK'), 0);
    const full = spansPerRequest('bench-on', 2);
    console.log(`operation spans exported per measured request: on ${fixed(full, 2)}, on 10 % ${fixed(spansPerRequest('bench-sampled', 3), 3)}: sampled share ${percent(spansPerRequest('bench-sampled', 3) / full)} (set ${SAMPLED_RATIO * 100} %)`);
    // A chat of the user's own with some history, for the second workload.
    const { createChat } = await postGraphQL(urls[0]!, CREATE_CHAT, { input: { kind: 'GROUP', title: 'traced history', memberIds: [] } }, user!.accessToken);
    for (let index = 0; index < HISTORY_MESSAGES; index += 1) {
      await postGraphQL(urls[index % urls.length]!, SEND_MESSAGE_RECEIPT, { input: { chatId: createChat.id, kind: 'TEXT', text: `${BENCH_TEXT} (${index})` } }, user!.accessToken);
    }
    const history = JSON.stringify({ query: HISTORY_QUERY, variables: { id: createChat.id } });
    for (const workload of [{ name: '{ me }', body: ME, count: LOOP_COUNT }, { name: 'history page', body: history, count: Math.ceil(LOOP_COUNT / 3) }]) {
      console.log('');
      await runInProcessPhase(variants, servers, user!.accessToken, workload);
    }
  } finally {
    await load.close();
    for (const server of servers) await server.stop();
    receiver.close();
  }
}
