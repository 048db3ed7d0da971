// OpenTelemetry: the span tree of operations exported over OTLP/HTTP to a receiver in the test, the
// client's traceparent honoured, trace ids in log lines, and nothing loaded with tracing off.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { startTracing, traceJobs } from '../src/tracing/tracing.ts';
import { PermanentJobError } from '../src/notifications/jobs.ts';
import { createBullQueue, startBullWorker, type JobProcessor } from '../src/notifications/queue.ts';
import { createChat, gql, registerUser, startSocketTestApp, startTestApp, testRedisUrl } from './support/helpers.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: Array<{ key: string; value: Record<string, unknown> }>;
  status?: { code?: number };
}

const spans: ExportedSpan[] = [];
const services = new Set<string>();
let receiver: Server;
let endpoint: string;

/** An OTLP/HTTP (JSON) trace receiver on a port below the ephemeral range (see test/support/ports.ts). */
async function listenForSpans(): Promise<number> {
  for (;;) {
    const port = 17_200 + Math.floor(Math.random() * 800);
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = JSON.parse((request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8'));
        for (const resourceSpans of body.resourceSpans ?? []) {
          for (const attribute of resourceSpans.resource?.attributes ?? []) if (attribute.key === 'service.name') services.add(attribute.value.stringValue);
          for (const scopeSpans of resourceSpans.scopeSpans ?? []) spans.push(...scopeSpans.spans);
        }
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const listening = await new Promise<boolean>((resolve) => {
      receiver.once('error', () => resolve(false));
      receiver.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (listening) return port;
  }
}

const logLines: Array<Record<string, any>> = [];
const logger = pino(
  { level: 'info' },
  new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  }),
);

const attribute = (span: ExportedSpan, key: string) => Object.values(span.attributes.find((entry) => entry.key === key)?.value ?? {})[0];
const childrenOf = (parent: ExportedSpan) => spans.filter((span) => span.parentSpanId === parent.spanId && span.traceId === parent.traceId);
const named = (name: string) => spans.filter((span) => span.name === name);

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN_ID = '00f067aa0ba902b7';

beforeAll(async () => {
  endpoint = `http://127.0.0.1:${await listenForSpans()}`;
});
afterAll(async () => {
  await new Promise((resolve) => receiver?.close(resolve));
});

describe('tracing on (OTEL_EXPORTER_OTLP_ENDPOINT set)', () => {
  let app: App;
  let deferredParts = 0;
  beforeAll(async () => {
    const started = await startSocketTestApp({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, TRACE_RESOLVER_THRESHOLD_MS: '0' }, { logger });
    app = started.app;
    const user = await registerUser(app);
    const connection = connect(started.url, user.accessToken);
    const overSocket = subscribe(connection, 'query OverSocket { me { id } }');
    await overSocket.completed;
    const events = subscribe(connection, 'subscription Typing($c: ID!) { typing(chatId: $c) { isTyping } }', { c: await createChat(app, user, { kind: 'GROUP', title: 'traced', memberIds: [] }) });
    await settle();
    events.unsubscribe();
    await connection.dispose();
    await gql(app, 'query Me { me { id username } }', {}, { token: user.accessToken, headers: { traceparent: `00-${TRACE_ID}-${CLIENT_SPAN_ID}-01` } });
    await gql(app, 'query Broken { me { id ', {});
    const deferred = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed', authorization: `Bearer ${user.accessToken}` },
      body: JSON.stringify({ query: 'query Deferred { me { id ... @defer { username } } }' }),
    });
    deferredParts = (await deferred.text()).split(/\r?\n/).filter((line) => line.startsWith('{')).length;
    // A failure no resolver expects, logged by useErrorLogging inside the operation's trace.
    const { presence } = app.services;
    presence.onlineUserIds = () => Promise.reject(new Error('presence store unreachable'));
    await gql(app, 'query Status($id: ID!) { user(id: $id) { id status } }', { id: user.id }, { token: user.accessToken, headers: { 'x-request-id': 'traced-failure' } });
    // Stopping exports what is still buffered.
    await app.stop();
  });

  it('exports an operation span with parse, validate and execute children, and resolver spans under execute', () => {
    const [me] = named('query Me');
    expect(me).toBeDefined();
    expect(services).toContain('kocmoc');
    expect(attribute(me!, 'graphql.operation.name')).toBe('Me');
    expect(attribute(me!, 'kocmoc.request_id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(childrenOf(me!).map((span) => span.name).sort()).toEqual(['graphql.execute', 'graphql.parse', 'graphql.validate']);
    const execute = childrenOf(me!).find((span) => span.name === 'graphql.execute')!;
    const resolvers = childrenOf(execute).map((span) => span.name);
    expect(resolvers).toContain('graphql.resolve Query.me');
    const resolver = childrenOf(execute).find((span) => span.name === 'graphql.resolve Query.me')!;
    expect(attribute(resolver, 'graphql.field.path')).toBe('me');
  });

  it('traces operations over graphql-ws the same way, and the set-up of a subscription', () => {
    const [overSocket] = named('query OverSocket');
    expect(childrenOf(overSocket!).map((span) => span.name).sort()).toEqual(['graphql.execute', 'graphql.parse', 'graphql.validate']);
    const [typing] = named('subscription Typing');
    expect(childrenOf(typing!).map((span) => span.name)).toContain('graphql.subscribe');
  });

  it('puts the SQL statements Prisma runs under the execute span, with their text', () => {
    const [me] = named('query Me');
    const execute = childrenOf(me!).find((span) => span.name === 'graphql.execute')!;
    const queries = childrenOf(execute).filter((span) => span.name === 'db.query');
    expect(queries.length).toBeGreaterThan(0);
    expect(queries.map((span) => attribute(span, 'db.statement'))).toContainEqual(expect.stringMatching(/^SELECT .*"User"/s));
    expect(attribute(queries[0]!, 'db.system')).toBe('postgresql');
  });

  it('ends the span of a @defer operation with its last part', () => {
    expect(deferredParts).toBeGreaterThanOrEqual(2);
    const [deferred] = named('query Deferred');
    expect(childrenOf(deferred!).map((span) => span.name)).toContain('graphql.execute');
  });

  it('continues the trace of the client traceparent', () => {
    const [me] = named('query Me');
    expect(me!.traceId).toBe(TRACE_ID);
    expect(me!.parentSpanId).toBe(CLIENT_SPAN_ID);
  });

  it('puts worker-pool tasks under the execute span that ran them', () => {
    const [register] = spans.filter((span) => span.name.startsWith('mutation') && childrenOf(span).length > 0);
    const execute = childrenOf(register!).find((span) => span.name === 'graphql.execute')!;
    expect(childrenOf(execute).map((span) => span.name)).toContain('cpu hashPassword');
  });

  it('puts the request id, trace id and operation span id in the log lines of an operation', () => {
    const logged = logLines.find((line) => line.requestId === 'traced-failure' && line.msg === 'unexpected error');
    const [status] = named('query Status');
    expect(logged).toMatchObject({ traceId: status!.traceId, spanId: status!.spanId });
    expect(attribute(status!, 'kocmoc.request_id')).toBe('traced-failure');
  });

  it('marks an operation that fails to parse as an error', () => {
    const failed = spans.find((span) => span.name === 'graphql.operation' && span.status?.code === 2);
    expect(failed).toBeDefined();
    expect(childrenOf(failed!).map((span) => span.name)).toEqual(['graphql.parse']);
    expect(attribute(failed!, 'graphql.error.codes')).toBeDefined();
  });
});

describe('BullMQ jobs in the worker', () => {
  it('runs each job in a `job <name>` span of the worker service, an error when it fails', async () => {
    const tracing = (await startTracing({ endpoint, serviceName: 'kocmoc', resolverThresholdMs: 10 }, '-worker'))!;
    const prefix = `kocmoc-test-${randomUUID()}`;
    const ran: string[] = [];
    const process: JobProcessor = async (name, data) => {
      ran.push((data as { messageId: string }).messageId);
      if ((data as { messageId: string }).messageId === 'fails') throw new PermanentJobError('cannot deliver');
    };
    const worker = startBullWorker({ redisUrl: testRedisUrl(), prefix, process: traceJobs(tracing, process), logger: pino({ level: 'silent' }), concurrency: 1, lockDurationMs: 30_000 });
    const queue = createBullQueue(testRedisUrl(), pino({ level: 'silent' }), prefix);
    try {
      await queue.add('fan-out', [{ id: 'works', data: { messageId: 'works' } }, { id: 'fails', data: { messageId: 'fails' } }]);
      await vi.waitFor(() => expect(ran.sort()).toEqual(['fails', 'works']), { timeout: 10_000 });
    } finally {
      await worker.close();
      await queue.close();
      await tracing.shutdown();
    }
    const jobs = named('job fan-out');
    expect(jobs).toHaveLength(2);
    expect(jobs.map((span) => span.status?.code ?? 0).sort()).toEqual([0, 2]);
    expect(services).toContain('kocmoc-worker');
  });
});

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  it('never loads the SDK: the server and job modules import none of it, and only an endpoint makes startTracing load it', () => {
    const script = `
      await import('./src/server/app.ts');
      await import('./src/notifications/queue.ts');
      const { startTracing } = await import('./src/tracing/tracing.ts');
      console.log(String(await startTracing({ endpoint: undefined, serviceName: 'kocmoc', resolverThresholdMs: 10 })));
      await startTracing({ endpoint: 'http://127.0.0.1:9', serviceName: 'kocmoc', resolverThresholdMs: 10 }).catch((error) => console.log(error.message));`;
    const output = execFileSync(process.execPath, ['--import', './test/support/refuse-otel-sdk.mjs', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: join(import.meta.dirname, '..'),
      encoding: 'utf8',
    }).trim().split('\n');
    expect(output[0]).toBe('undefined');
    // The hook works: the import an endpoint causes is refused.
    expect(output[1]).toMatch(/^OpenTelemetry SDK loaded: .*@opentelemetry\/(sdk-|exporter-|resources)/);
  });

  it('starts nothing: no tracer provider is registered and spans do not record', async () => {
    const { trace } = await import('@opentelemetry/api');
    const app = await startTestApp();
    try {
      expect(await startTracing(app.services.config.tracing)).toBeUndefined();
      expect((await gql(app, '{ __typename }')).data).toEqual({ __typename: 'Query' });
      expect(trace.getTracer('probe').startSpan('probe').isRecording()).toBe(false);
    } finally {
      await app.stop();
    }
  });
});
