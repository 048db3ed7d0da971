// Idle WebSocket connections: how many authenticated graphql-ws connections the server holds, and
// what each costs in memory. Clients live in child processes (bench/ws-client.mjs), so this
// process's RSS and CPU are the server's. Connections open in steps of one client process each,
// sampling the server's memory (after a full GC) after every step, then all are held idle past one
// keep-alive round to show they survive it.
//
// One process can hold at most as many sockets as its open-file limit allows. When the target is
// beyond that, the rest go to a second instance of the same server in a child process
// (bench/ws-server.ts), as a second instance behind a load balancer would take them.
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { hostBusyShare, sampleHostCpu } from './host-cpu.ts';
import { describeCounts } from './outcomes.ts';
import { benchConfig, startBenchApp, type BenchContext } from './setup.ts';
import { fixed, sleep, table } from './stats.ts';
import {
  chunk,
  openFileLimit,
  sampleThisProcess,
  sourceAddress,
  startClientProcess,
  startServerProcess,
  type ChildRpc,
  type ProcessSample,
} from './ws-clients.ts';
import { createBenchUsers } from './ws-fixtures.ts';

/** The issue's target; BENCH_WS_CONNECTIONS overrides it for a quick try. */
const TARGET_CONNECTIONS = Number(process.env.BENCH_WS_CONNECTIONS ?? 25_000);
/** Sockets per client process: also the step between memory samples. */
const CONNECTIONS_PER_CLIENT = 5_000;
/** Handshakes a client process keeps in flight. */
const CONNECT_CONCURRENCY = 200;
/** Longer than the server's 12 s keep-alive interval, so every connection answers at least one ping. */
const HOLD_MS = 15_000;
/** Descriptors the server keeps for everything but client sockets (database pool, workers, IPC, logs). */
const FD_RESERVE = 500;
const BASELINE_SETTLE_MS = 2_000;
const MIB = 1024 * 1024;
const TARGET_RSS_PER_CONNECTION_KIB = 20;

interface Instance {
  label: string;
  wsUrl: string;
  sample(): Promise<ProcessSample>;
  baseline?: ProcessSample;
  /** The latest sample taken while connecting, for the marginal cost of each step. */
  previous?: ProcessSample;
  connections: number;
}

interface ClientGroup {
  process: ChildRpc;
  address: string;
  instance: Instance;
  tokens: string[];
}

export async function runWsIdle({ databaseUrl }: BenchContext): Promise<void> {
  const config = benchConfig({ DATABASE_URL: databaseUrl });
  const { app, url } = await startBenchApp(config);
  const groups: ClientGroup[] = [];
  let second: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    const fixturesStarted = performance.now();
    const users = await createBenchUsers(app, TARGET_CONNECTIONS, 'idle');
    const fixturesS = (performance.now() - fixturesStarted) / 1_000;

    const fdLimit = openFileLimit();
    const capacity = Math.max(0, Math.min(TARGET_CONNECTIONS, fdLimit - sampleThisProcess().openFds - FD_RESERVE));
    const here: Instance = { label: 'A (bench process)', wsUrl: toWs(url), sample: async () => sampleThisProcess(), connections: 0 };
    const instances = [here];
    const plan: Array<[Instance, string[]]> = [[here, users.slice(0, capacity).map((user) => user.accessToken)]];
    if (capacity < TARGET_CONNECTIONS) {
      second = await startServerProcess(databaseUrl);
      const remote = second;
      const there: Instance = { label: 'B (child process)', wsUrl: toWs(remote.url), sample: () => remote.call('sample'), connections: 0 };
      instances.push(there);
      plan.push([there, users.slice(capacity).map((user) => user.accessToken)]);
    }
    for (const [instance, tokens] of plan) {
      for (const part of chunk(tokens, CONNECTIONS_PER_CLIENT)) {
        const address = sourceAddress(groups.length);
        groups.push({ process: startClientProcess(address), address, instance, tokens: part });
      }
    }

    const [portLow, portHigh] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    console.log(`target: ${TARGET_CONNECTIONS} idle graphql-ws connections, each its own user, device session and access token`);
    console.log(`  (${TARGET_CONNECTIONS} users + sessions inserted directly and tokens signed by the app's token service in ${fixed(fixturesS)} s)`);
    console.log(`open-file limit per process: ${fdLimit}; instance A takes ${capacity} (limit - ${FD_RESERVE} reserved - already open)` +
      (second ? `, instance B (same server, child process ${second.pid}, same database, no Redis) takes ${TARGET_CONNECTIONS - capacity}` : ''));
    console.log(`clients: ${groups.length} child processes x <= ${CONNECTIONS_PER_CLIENT} graphql-ws clients, source addresses ${groups[0]?.address}..${groups.at(-1)?.address} ` +
      `(ephemeral ports ${portLow}-${portHigh}: ${(portHigh ?? 0) - (portLow ?? 0) + 1} per source address), ${CONNECT_CONCURRENCY} handshakes in flight per process`);
    console.log(`cores: ${availableParallelism()}, shared by the server process(es), the client processes and PostgreSQL; nothing is pinned`);
    console.log('memory: sampled after a full GC; rss/conn = (RSS now - RSS before any connection) / connections on that instance;');
    console.log('  step rss/conn = RSS added by this step / connections it opened');
    console.log('');

    // Let the garbage of the set-up (rows, tokens) be collected and returned before the baseline.
    await sleep(BASELINE_SETTLE_MS);
    for (const instance of instances) instance.baseline = instance.previous = await instance.sample();
    const steps: Array<Array<string | number>> = [];
    /** Instance A after its first step: RSS from there on excludes whatever the baseline still held. */
    let firstStep: { sample: ProcessSample; connections: number } | undefined;
    for (const group of groups) {
      const hostBefore = sampleHostCpu();
      const result = await group.process.call<{ opened: number; failures: Record<string, number>; ms: number }>('connect', {
        url: group.instance.wsUrl,
        tokens: group.tokens,
        concurrency: CONNECT_CONCURRENCY,
      });
      const hostBusy = hostBusyShare(hostBefore, sampleHostCpu());
      group.instance.connections += result.opened;
      const sample = await group.instance.sample();
      const stepRssPerConn = (sample.rssBytes - group.instance.previous!.rssBytes) / result.opened / 1024;
      group.instance.previous = sample;
      if (group.instance === here && !firstStep) firstStep = { sample, connections: here.connections };
      steps.push([
        group.instance.label,
        group.address,
        result.opened,
        describeCounts(result.failures) || '0',
        fixed((result.opened * 1_000) / result.ms, 0),
        fixed(hostBusy * 100, 0),
        group.instance.connections,
        ...memoryColumns(group.instance, sample),
        fixed(stepRssPerConn),
        sample.openFds,
      ]);
    }
    console.log('connecting, one client process at a time:');
    console.log(
      table(
        ['instance', 'source', 'opened', 'failed', 'conn/s', 'host %', 'conns on instance', 'rss MiB', 'heap MiB', 'external MiB', 'rss/conn KiB', 'heap/conn KiB', 'step rss/conn KiB', 'server fds'],
        steps,
      ),
    );

    // Idle: nothing but keep-alive pings (and their pongs) for a while.
    const before = await Promise.all(instances.map((instance) => instance.sample()));
    const hostBefore = sampleHostCpu();
    const holdStarted = performance.now();
    await sleep(HOLD_MS);
    const holdMs = performance.now() - holdStarted;
    const hostBusy = hostBusyShare(hostBefore, sampleHostCpu());
    const after = await Promise.all(instances.map((instance) => instance.sample()));
    const statuses = await Promise.all(groups.map((group) => group.process.call<{ open: number; closedAfterOpen: Record<string, number> }>('status')));

    const openOn = (instance: Instance) => groups.reduce((total, group, index) => total + (group.instance === instance ? statuses[index]!.open : 0), 0);
    const closed = new Map<string, number>();
    for (const status of statuses) for (const [code, n] of Object.entries(status.closedAfterOpen)) closed.set(code, (closed.get(code) ?? 0) + n);
    const totalOpen = instances.reduce((total, instance) => total + openOn(instance), 0);

    console.log('');
    console.log(`after ${fixed(holdMs / 1_000)} s idle (keep-alive ping every 12 s; host CPU ${fixed(hostBusy * 100, 0)}% busy over the hold):`);
    console.log(
      table(
        ['instance', 'open (client view)', 'server fds', 'rss MiB', 'heap MiB', 'rss/conn KiB', 'heap/conn KiB', 'server CPU % of 1 core'],
        instances.map((instance, index) => {
          const sample = after[index]!;
          const cpuShare = (sample.cpuMicros - before[index]!.cpuMicros) / 1_000 / holdMs;
          const [rss, heap, , rssPerConn, heapPerConn] = memoryColumns(instance, sample);
          return [instance.label, openOn(instance), sample.openFds, rss!, heap!, rssPerConn!, heapPerConn!, fixed(cpuShare * 100, 1)];
        }),
      ),
    );
    if (closed.size > 0) console.log(`closed during the run: ${[...closed].map(([code, n]) => `code ${code} x${n}`).join(', ')}`);
    console.log('');
    const first = instances[0]!;
    const firstRssPerConn = (after[0]!.rssBytes - first.baseline!.rssBytes) / first.connections / 1024;
    console.log(
      `target >= 25000 idle authenticated connections on this machine: ${totalOpen >= 25_000 ? 'PASS' : 'MISS'} (${totalOpen} open after the hold` +
        (instances.length > 1 ? `: ${instances.map((instance) => `${openOn(instance)} on ${instance.label.split(' ')[0]}`).join(' + ')})` : ')'),
    );
    const marginal = firstStep && first.connections > firstStep.connections
      ? (after[0]!.rssBytes - firstStep.sample.rssBytes) / (first.connections - firstStep.connections) / 1024
      : Number.NaN;
    const heapPerConn = (after[0]!.heapUsedBytes - first.baseline!.heapUsedBytes) / first.connections / 1024;
    console.log(
      `memory per idle connection (instance A, ${first.connections} connections): ${fixed(firstRssPerConn)} KiB RSS ` +
        `(from its first step on: ${fixed(marginal)} KiB); V8 heap ${fixed(heapPerConn)} KiB; kernel socket buffers not included`,
    );
    // Issue #20's target, on the larger of the two readings.
    const worst = Math.max(firstRssPerConn, Number.isNaN(marginal) ? 0 : marginal);
    console.log(`target RSS per idle authenticated graphql-ws connection <= ${TARGET_RSS_PER_CONNECTION_KIB} KiB: ${worst <= TARGET_RSS_PER_CONNECTION_KIB ? 'PASS' : 'MISS'} (${fixed(worst)} KiB)`);
  } finally {
    const teardownStarted = performance.now();
    // Client processes exit, so every socket closes; then the servers stop (presence marks everyone offline).
    await Promise.all(groups.map((group) => group.process.stop()));
    await second?.stop(60_000);
    await app.stop();
    console.log(`teardown (clients exit, servers stop): ${fixed((performance.now() - teardownStarted) / 1_000)} s`);
  }
}

const toWs = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');

/** rss, heap, external (MiB), then rss and heap per connection (KiB) against the instance's baseline. */
function memoryColumns(instance: Instance, sample: ProcessSample): string[] {
  const baseline = instance.baseline!;
  const perConnection = (now: number, then: number) => (instance.connections > 0 ? fixed((now - then) / instance.connections / 1024) : '-');
  return [
    fixed(sample.rssBytes / MIB, 0),
    fixed(sample.heapUsedBytes / MIB, 0),
    fixed(sample.externalBytes / MIB, 0),
    perConnection(sample.rssBytes, baseline.rssBytes),
    perConnection(sample.heapUsedBytes, baseline.heapUsedBytes),
  ];
}
