// Where a sendMessage's server CPU goes: the send-message bench's closed loop (50 senders, direct
// chats, load from a child process) with V8's sampling profiler on the server's main thread for the
// measured window only, and the busy samples grouped by component (self time) and by a few marker
// functions (inclusive time of their synchronous part). Shares of the profile times the window's
// measured CPU per send give ms per send by component. `npm run bench -- send-profile`;
// BENCH_SEND_PROFILE_REDIS=1 profiles the Redis mode instead of the embedded one;
// BENCH_SEND_PROFILE_OUT=<file> writes the profile; BENCH_SEND_PROFILE_SAMPLING=0 runs the same load
// without the profiler (one line of rate and CPU per send), to compare two builds round by round.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { buildApp } from '../src/server/app.ts';
import { startLoadProcess } from './graphql-load.ts';
import { createSendersAndChats, sendBody } from './send-message.ts';
import { benchConfig, benchRedisUrl, SEND_LOAD, type BenchContext } from './setup.ts';
import { fixed, table } from './stats.ts';

/** Sampling interval: 100 µs gives ~10 samples per send at ~1 ms of CPU each. */
const SAMPLING_INTERVAL_US = 100;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time grouped by what the code is: a package, a src/ file, or V8's own buckets. */
function componentOf({ functionName, url }: ProfileNode['callFrame']): string {
  if (functionName === '(garbage collector)') return 'V8: garbage collector';
  if (functionName === '(program)') return 'V8: (program) native, unattributed';
  const modules = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(url);
  if (modules) {
    const name = modules[1]!;
    const rest = modules[2] ?? '';
    if (name === 'graphql') {
      if (/language\//.test(rest)) return 'graphql: parse (lexer/parser/visitor)';
      if (/validation\//.test(rest)) return 'graphql: validate';
      if (/execution\//.test(rest)) return 'graphql: execute';
      return 'graphql: other (type/utilities/error)';
    }
    if (name.startsWith('@prisma/') || name === 'prisma') return name === '@prisma/adapter-pg' ? 'Prisma: adapter-pg' : 'Prisma: client + engine runtime';
    if (name === 'pg' || name.startsWith('pg-')) return 'pg driver (pg, pg-protocol, pg-types)';
    if (name.startsWith('@pothos/')) return 'Pothos';
    if (name.startsWith('@envelop/') || name.startsWith('@graphql-yoga/') || name === 'graphql-yoga') return 'Yoga + envelop';
    if (name.startsWith('@whatwg-node/')) return '@whatwg-node (fetch API, promise helpers)';
    if (name === 'jose') return 'jose (JWT verify)';
    if (name === 'pino' || name.startsWith('pino-') || name === 'sonic-boom') return 'logging (pino)';
    if (name === 'zod') return 'zod';
    if (name === 'dataloader') return 'dataloader';
    if (name === 'tsx' || name === 'esbuild' || name === 'source-map-support') return 'tsx loader';
    return `other package: ${name}`;
  }
  const source = /\/(src|workers)\/(.*)\.ts$/.exec(url);
  if (source) return `${source[1]}/${source[2]}`;
  if (url.startsWith('node:internal/http') || url.startsWith('node:_http') || url === 'node:http') return 'node: http';
  if (/^node:(net|internal\/(net|stream_base|streams|buffer)|stream|buffer)/.test(url)) return 'node: net/streams/buffer';
  if (/^node:internal\/(crypto|webcrypto)|^node:crypto/.test(url)) return 'node: crypto (JS side)';
  if (/^node:internal\/(process\/task_queues|async_hooks|timers)|^node:timers/.test(url)) return 'node: task queues/timers/async hooks';
  if (url.startsWith('node:')) return 'node: other';
  if (url === '') return `native: ${functionName || '(anonymous)'}`;
  return `other: ${url.replace(/^.*\//, '')}`;
}

/** Inclusive (synchronous) time of these functions: each sample counts once per marker on its stack. */
const MARKERS: Array<[string, (frame: ProfileNode['callFrame']) => boolean]> = [
  ['createContext (auth: JWT verify + session cache)', (f) => f.functionName === 'createContext' && f.url.endsWith('/src/context.ts')],
  ['graphql parse', (f) => f.functionName === 'parse' && f.url.includes('graphql/language/parser')],
  ['graphql validate', (f) => f.functionName === 'validate' && f.url.includes('graphql/validation/validate')],
  ['sendMessage (src/messages/messages.ts, sync parts)', (f) => f.functionName === 'sendMessage' && f.url.endsWith('/src/messages/messages.ts')],
  ['  sealContent (encryption at rest)', (f) => f.functionName === 'sealContent'],
  ['  tokensToIndex (search tokens)', (f) => f.functionName === 'indexTokens'],
  ['  mentionsCte (mention resolution)', (f) => f.functionName === 'mentionsCte'],
  ['$queryRaw / Prisma request (sync parts)', (f) => f.url.includes('@prisma/client') && /^(\$queryRaw|_request|request)$/.test(f.functionName)],
  ['events.message (publish)', (f) => f.functionName === 'message' && f.url.includes('/src/realtime/')],
  ['JSON.stringify of results (yoga result processing)', (f) => f.functionName === 'processRegularResult' || f.functionName === 'jsonStringifyResultWithoutInternals'],
];

export async function runSendProfile({ databaseUrl }: BenchContext): Promise<void> {
  const redis = process.env.BENCH_SEND_PROFILE_REDIS === '1';
  const config = redis
    ? benchConfig({ DATABASE_URL: databaseUrl, REDIS_URL: benchRedisUrl(), JOB_QUEUE_PREFIX: `bench-profile-${process.pid}` })
    : benchConfig({ DATABASE_URL: databaseUrl, REDIS_URL: '' });
  const app = await buildApp({ config });
  const { url } = await app.start();
  const load = startLoadProcess();
  const session = new Session();
  session.connect();
  try {
    const { senders } = await createSendersAndChats(url);
    const sampling = process.env.BENCH_SEND_PROFILE_SAMPLING === '0' ? 0 : SAMPLING_INTERVAL_US;
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: sampling || SAMPLING_INTERVAL_US });
    let cpuBefore: NodeJS.CpuUsage | undefined;
    let started = 0;
    let cpuMs = Number.NaN;
    let wallMs = Number.NaN;
    let profiling: Promise<unknown> | undefined;
    let stopped: Promise<{ profile: Profile }> | undefined;
    const summary = await load.run(
      {
        url,
        senders: senders.map((sender, index) => ({ token: sender.token, body: sendBody(sender.directChatId, `profile-${index}`) })),
        warmUpMs: SEND_LOAD.warmUpMs,
        durationMs: SEND_LOAD.durationMs,
      },
      {
        onStart: () => {
          profiling = sampling ? session.post('Profiler.start') : Promise.resolve();
          cpuBefore = process.cpuUsage();
          started = performance.now();
        },
        onEnd: () => {
          const cpu = process.cpuUsage(cpuBefore);
          cpuMs = (cpu.user + cpu.system) / 1_000;
          wallMs = performance.now() - started;
          stopped = sampling ? profiling!.then(() => session.post('Profiler.stop') as Promise<{ profile: Profile }>) : undefined;
        },
      },
    );
    const ok = summary.codes.OK ?? 0;
    if (!stopped) {
      console.log(`unprofiled: ${redis ? 'redis' : 'embedded'} ok ${ok} ${fixed((ok * 1_000) / wallMs, 0)}/s p99 ${fixed(summary.latencyMs.p99, 1)} ms server CPU ${fixed(cpuMs / ok, 3)} ms/send errors ${Object.values(summary.codes).reduce((a, b) => a + b, 0) - ok}`);
      return;
    }
    const { profile } = await stopped;
    // BENCH_SEND_PROFILE_OUT=<file>.cpuprofile keeps the profile for Chrome DevTools or speedscope.
    if (process.env.BENCH_SEND_PROFILE_OUT) writeFileSync(process.env.BENCH_SEND_PROFILE_OUT, JSON.stringify(profile));
    console.log(`mode: ${redis ? 'redis' : 'embedded'}; sendMessage into direct chats, ${senders.length} senders; profiled window ${fixed(wallMs / 1_000, 1)} s, sampling every ${SAMPLING_INTERVAL_US} µs`);
    console.log(`ok ${ok} (${fixed((ok * 1_000) / wallMs, 0)}/s, under the profiler), p99 ${fixed(summary.latencyMs.p99, 1)} ms; server CPU ${fixed(cpuMs / ok, 3)} ms per send (process, all threads)`);
    report(profile, ok, cpuMs);
  } finally {
    session.disconnect();
    await load.close();
    await app.stop();
  }
}

function report(profile: Profile, sends: number, cpuMs: number) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the time a sample stands for is the next delta.
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + us);
  }
  const idleUs = [...selfUs].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((sum, [, us]) => sum + us, 0);
  const busyUs = [...selfUs].reduce((sum, [, us]) => sum + us, 0) - idleUs;
  // The profile's busy time is wall time on the thread (a thread waiting for a core inflates it):
  // its shares, times the CPU the process measured, are the per-send costs.
  const msPerSend = (us: number) => (us / busyUs) * (cpuMs / sends);

  const components = new Map<string, number>();
  const functions = new Map<string, number>();
  const markers = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const { callFrame } = byId.get(id)!;
    if (callFrame.functionName === '(idle)') continue;
    const component = componentOf(callFrame);
    components.set(component, (components.get(component) ?? 0) + us);
    const fn = `${callFrame.functionName || '(anonymous)'} ${callFrame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(src|workers)\//, '$1/')}:${callFrame.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      for (const [name, matches] of MARKERS) if (!seen.has(name) && matches(frame)) seen.add(name);
    }
    for (const name of seen) markers.set(name, (markers.get(name) ?? 0) + us);
  }
  const rows = (entries: Map<string, number>, limit = Infinity) =>
    [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, us]) => [name, fixed((us / busyUs) * 100, 1), fixed(msPerSend(us), 3)]);
  console.log(`busy ${fixed(busyUs / 1_000, 0)} ms of samples (idle ${fixed(idleUs / 1_000, 0)} ms)`);
  console.log('');
  console.log(table(['component (self time)', '% of busy', 'ms/send'], rows(components)));
  console.log('');
  console.log(table(['marker (inclusive, synchronous part)', '% of busy', 'ms/send'], MARKERS.map(([name]) => [name, fixed(((markers.get(name) ?? 0) / busyUs) * 100, 1), fixed(msPerSend(markers.get(name) ?? 0), 3)])));
  console.log('');
  console.log(table(['function (self time), top 40', '% of busy', 'ms/send'], rows(functions, 40)));
}
