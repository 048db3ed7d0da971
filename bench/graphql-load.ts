// Closed-loop GraphQL load from a child process: each sender keeps exactly one request in flight on
// its own keep-alive socket for a fixed time. A separate process, so the server's CPU and event-loop
// readings in the parent are the server's alone. Forked through tsx, so it stays TypeScript.
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { summarizeLatency, type CodeCounts, type Latency } from './outcomes.ts';

/** Replaced by a per-sender counter in every request body, so bodies can carry unique ids. */
export const SEQUENCE_PLACEHOLDER = '__SEQ__';
const CHILD_FLAG = '--graphql-load-child';

export interface SenderSpec {
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** The JSON request body; every SEQUENCE_PLACEHOLDER becomes 0, 1, 2, ... per request. */
  body: string;
}

export interface LoadSpec {
  url: string;
  senders: SenderSpec[];
  /** Requests completing during the warm-up are not counted. */
  warmUpMs: number;
  /** The measured window after the warm-up. */
  durationMs: number;
  timeoutMs?: number;
}

export interface LoadSummary {
  /** Completions inside the window, by `extensions.code` of the first error (`OK` without errors). */
  codes: CodeCounts;
  windowMs: number;
  /** Latency of every request completing inside the window, whatever its outcome. */
  latencyMs: Latency;
  /** The load process's own CPU over the window. */
  clientCpuMs: number;
}

export interface LoadWindow {
  /** Called when the window opens and closes, so the parent samples its side at the same moments. */
  onStart(): void;
  onEnd(): void;
}

export interface LoadProcess {
  run(spec: LoadSpec, window: LoadWindow): Promise<LoadSummary>;
  close(): Promise<void>;
}

type ChildMessage = { type: 'start' } | { type: 'end' } | { type: 'summary'; summary: LoadSummary } | { type: 'failed'; message: string };

/** Forks this file as the load process; one run at a time. */
export function startLoadProcess(): LoadProcess {
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), [CHILD_FLAG], { execArgv: ['--import', 'tsx'] });
  let current: { window: LoadWindow; resolve: (summary: LoadSummary) => void; reject: (error: Error) => void } | undefined;
  child.on('message', (message: ChildMessage) => {
    if (!current) return;
    if (message.type === 'start') current.window.onStart();
    else if (message.type === 'end') current.window.onEnd();
    else if (message.type === 'summary') current.resolve(message.summary);
    else current.reject(new Error(`load process: ${message.message}`));
  });
  child.on('exit', (code) => current?.reject(new Error(`load process exited with ${code}`)));
  return {
    run(spec, window) {
      return new Promise<LoadSummary>((resolve, reject) => {
        current = { window, resolve, reject };
        child.send(spec);
      }).finally(() => {
        current = undefined;
      });
    },
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.disconnect();
      await exited;
    },
  };
}

/** One GraphQL request from the parent (setup work, not measured); throws on any error. */
export async function postGraphQL<T = any>(url: string, query: string, variables: Record<string, unknown>, token?: string): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: Array<{ message: string }> };
  if (body.errors?.length || !body.data) throw new Error(`GraphQL ${response.status}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** Runs `task` over `items` with at most `limit` at a time; results in order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

// ---- child side ----

async function runLoad(spec: LoadSpec, notify: (message: ChildMessage) => void): Promise<LoadSummary> {
  const target = new URL(spec.url);
  // One socket per sender: a closed loop of N senders is N concurrent connections, as N clients would be.
  const agent = new Agent({ keepAlive: true, maxSockets: spec.senders.length });
  const timeoutMs = spec.timeoutMs ?? 30_000;
  const startAt = performance.now() + spec.warmUpMs;
  const endAt = startAt + spec.durationMs;
  const codes: CodeCounts = {};
  const latencies: number[] = [];
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuMs = Number.NaN;

  // Timers tell the parent when the window opens and closes; both marks run once, and a run that
  // drains before a late timer fires still sends them, so the parent is never left waiting.
  const markStart = () => {
    if (cpuAtStart) return;
    cpuAtStart = process.cpuUsage();
    notify({ type: 'start' });
  };
  const markEnd = () => {
    if (!Number.isNaN(cpuMs)) return;
    markStart();
    const cpu = process.cpuUsage(cpuAtStart);
    cpuMs = (cpu.user + cpu.system) / 1_000;
    notify({ type: 'end' });
  };
  const startTimer = setTimeout(markStart, spec.warmUpMs);
  const endTimer = setTimeout(markEnd, spec.warmUpMs + spec.durationMs);

  const sender = async ({ token, body }: SenderSpec) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    for (let sequence = 0; performance.now() < endAt; sequence++) {
      const started = performance.now();
      const code = await post(target, agent, headers, body.replaceAll(SEQUENCE_PLACEHOLDER, String(sequence)), timeoutMs);
      const finished = performance.now();
      if (finished < startAt || finished >= endAt) continue;
      codes[code] = (codes[code] ?? 0) + 1;
      latencies.push(finished - started);
    }
  };
  try {
    await Promise.all(spec.senders.map(sender));
  } finally {
    clearTimeout(startTimer);
    clearTimeout(endTimer);
    markEnd();
    agent.destroy();
  }
  return {
    codes,
    windowMs: spec.durationMs,
    latencyMs: summarizeLatency(latencies),
    clientCpuMs: cpuMs,
  };
}

/** One POST; resolves with its outcome code, never rejects. */
function post(target: URL, agent: Agent, headers: Record<string, string>, body: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const outgoing = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        timeout: timeoutMs,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', () => resolve('NETWORK'));
        response.on('end', () => resolve(outcomeOf(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
      },
    );
    outgoing.on('timeout', () => {
      resolve('TIMEOUT');
      outgoing.destroy();
    });
    outgoing.on('error', () => resolve('NETWORK'));
    outgoing.end(body);
  });
}

function outcomeOf(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> };
    if (body.errors?.length) return body.errors[0]?.extensions?.code ?? 'UNKNOWN';
    return body.data ? 'OK' : `HTTP_${status}`;
  } catch {
    return `HTTP_${status}`;
  }
}

if (process.argv[2] === CHILD_FLAG && process.send) {
  const notify = (message: ChildMessage) => process.send!(message);
  process.on('message', (spec: LoadSpec) => {
    runLoad(spec, notify).then(
      (summary) => notify({ type: 'summary', summary }),
      (error: unknown) => notify({ type: 'failed', message: String(error) }),
    );
  });
  // The parent closing the channel is the signal to go.
  process.on('disconnect', () => process.exit(0));
}
