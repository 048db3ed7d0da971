// OpenTelemetry: the span tree of operations exported over OTLP/HTTP to a receiver in the test, the
// client's traceparent honoured, trace ids in log lines, and nothing loaded with tracing off.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { createLogger } from '../src/logger.ts';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { App } from '../src/server/app.ts';
import { startTracing } from '../src/tracing/tracing.ts';
import { PermanentJobError } from '../src/notifications/jobs.ts';
import { createBullQueue, QUEUE_NAME, startBullWorker, type JobProcessor } from '../src/notifications/queue.ts';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { ensureDatabase } from '../src/db/pg-admin.ts';
import { createChat, gql, registerUser, scratchDatabaseUrl, startSocketTestApp, startTestApp, testConfig, testRedisUrl } from './support/helpers.ts';
import { connect, settle, subscribe } from './support/ws-helpers.ts';
import { SCHEDULED_QUEUE_NAME } from '../src/messages/scheduled-runner.ts';

const SCHEDULE = 'mutation Schedule($input: ScheduleMessageInput!) { scheduleMessage(input: $input) { id } }';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP's SpanKind: 5 is CONSUMER. */
  kind?: number;
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
// The server's own logger (its trace mixin included), writing here instead of stdout.
const logger = createLogger(
  'info',
  new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  }),
);
const TRACING_DEFAULTS = { serviceName: 'kocmoc', resolverThresholdMs: 10, sampler: 'parentbased_always_on', samplerRatio: 1 } as const;

const attribute = (span: ExportedSpan, key: string) => Object.values(span.attributes.find((entry) => entry.key === key)?.value ?? {})[0];
const childrenOf = (parent: ExportedSpan) => spans.filter((span) => span.parentSpanId === parent.spanId && span.traceId === parent.traceId);
const named = (name: string) => spans.filter((span) => span.name === name);

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN_ID = '00f067aa0ba902b7';
const REPEAT_SPAN_ID = '00f067aa0ba902b8';

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
    // The same document again: Yoga's cache has it parsed and validated.
    await gql(app, 'query Me { me { id username } }', {}, { token: user.accessToken, headers: { traceparent: `00-${TRACE_ID}-${REPEAT_SPAN_ID}-01` } });
    await gql(app, 'query Broken { me { id ', {});
    const deferred = await app.yoga.fetch('http://kocmoc.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed', authorization: `Bearer ${user.accessToken}` },
      body: JSON.stringify({ query: 'query Deferred { me { id ... @defer { username } } }' }),
    });
    deferredParts = (await deferred.text()).split(/\r?\n/).filter((line) => line.startsWith('{')).length;
    // A failure no resolver expects, logged by useErrorLogging inside the operation's trace.
    const { presence, logger: serverLogger } = app.services;
    presence.onlineUserIds = () => {
      // A line of the server-wide logger (not the request's), written inside a resolver.
      serverLogger.warn('presence store probe');
      return Promise.reject(new Error('presence store unreachable'));
    };
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

  it('makes no parse or validate span for a document Yoga had cached, and marks the operation cached', () => {
    const repeat = named('query Me').find((span) => span.parentSpanId === REPEAT_SPAN_ID);
    expect(repeat).toBeDefined();
    expect(childrenOf(repeat!).map((span) => span.name)).toEqual(['graphql.execute']);
    expect(attribute(repeat!, 'graphql.document.cached')).toBe(true);
    const [first] = named('query Me').filter((span) => span.parentSpanId === CLIENT_SPAN_ID);
    expect(attribute(first!, 'graphql.document.cached')).toBeUndefined();
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
    // Keys bound by the request's logger are not written a second time by the mixin.
    expect(Object.keys(logged!).filter((key) => key === 'traceId')).toHaveLength(1);
  });

  it('puts the request id and the active span in a line of the server-wide logger written inside a resolver', () => {
    const probes = logLines.filter((line) => line.msg === 'presence store probe');
    expect(probes).toHaveLength(1);
    const [status] = named('query Status');
    const execute = childrenOf(status!).find((span) => span.name === 'graphql.execute')!;
    expect(probes[0]).toMatchObject({ requestId: 'traced-failure', traceId: status!.traceId, spanId: execute.spanId });
  });

  it('writes no trace id in lines outside any operation', () => {
    const outside = logLines.filter((line) => line.requestId === undefined);
    expect(outside.length).toBeGreaterThan(0);
    expect(outside.filter((line) => line.traceId !== undefined)).toEqual([]);
  });

  it('marks an operation that fails to parse as an error', () => {
    const failed = spans.find((span) => span.name === 'graphql.operation' && span.status?.code === 2);
    expect(failed).toBeDefined();
    expect(childrenOf(failed!).map((span) => span.name)).toEqual(['graphql.parse']);
    expect(attribute(failed!, 'graphql.error.codes')).toBeDefined();
  });
});

describe('head sampling (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG)', () => {
  it('refuses an unknown sampler or a ratio outside 0..1, and defaults to parent-based always on', () => {
    expect(() => testConfig({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/OTEL_TRACES_SAMPLER/);
    expect(() => testConfig({ OTEL_TRACES_SAMPLER_ARG: '1.5' })).toThrow(/OTEL_TRACES_SAMPLER_ARG/);
    expect(testConfig().tracing).toMatchObject({ sampler: 'parentbased_always_on', samplerRatio: 1 });
    expect(testConfig({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }).tracing).toMatchObject({ samplerRatio: 0.25 });
  });

  it('parentbased_traceidratio at 0 records no trace of its own but follows a client that sampled; log lines keep the request id', async () => {
    const before = spans.length;
    // A second traced app in this process: the schema's resolvers, wrapped once, find its plugin too.
    const app = await startTestApp({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0', TRACE_RESOLVER_THRESHOLD_MS: '0' }, { logger });
    try {
      const user = await registerUser(app);
      const sampledTrace = randomUUID().replaceAll('-', '');
      app.services.presence.onlineUserIds = async () => {
        app.services.logger.warn('sampling probe');
        return new Set<string>();
      };
      const status = 'query SampledStatus($id: ID!) { user(id: $id) { id status } }';
      await gql(app, status, { id: user.id }, { token: user.accessToken, headers: { 'x-request-id': 'not-sampled' } });
      await gql(app, status, { id: user.id }, { token: user.accessToken, headers: { 'x-request-id': 'sampled-request', traceparent: `00-${sampledTrace}-${CLIENT_SPAN_ID}-01` } });
    } finally {
      await app.stop();
    }
    const exported = spans.slice(before).filter((span) => span.name === 'query SampledStatus');
    expect(exported).toHaveLength(1);
    const execute = childrenOf(exported[0]!).find((span) => span.name === 'graphql.execute')!;
    expect(childrenOf(execute).map((span) => span.name)).toContain('graphql.resolve Query.user');
    // Nothing of the operation left out reached the receiver: every new span is of the sampled trace.
    expect(spans.slice(before).filter((span) => span.traceId !== exported[0]!.traceId)).toEqual([]);
    const probes = logLines.filter((line) => line.msg === 'sampling probe');
    expect(probes.find((line) => line.requestId === 'not-sampled')).not.toHaveProperty('traceId');
    expect(probes.find((line) => line.requestId === 'sampled-request')).toMatchObject({ traceId: exported[0]!.traceId });
  });
});

describe('BullMQ jobs in the worker', () => {
  it('runs each job in a `job <name>` span of the worker service, an error when it fails', async () => {
    const tracing = (await startTracing({ endpoint, ...TRACING_DEFAULTS }, '-worker'))!;
    const prefix = `kocmoc-test-${randomUUID()}`;
    const ran: string[] = [];
    const jobLines: Array<Record<string, any>> = [];
    const jobLogger = createLogger('info', { write: (line: string) => void jobLines.push(JSON.parse(line)) });
    const process: JobProcessor = async (name, data) => {
      ran.push((data as { messageId: string }).messageId);
      jobLogger.info({ messageId: (data as { messageId: string }).messageId }, 'job ran');
      if ((data as { messageId: string }).messageId === 'fails') throw new PermanentJobError('cannot deliver');
    };
    const worker = startBullWorker({ redisUrl: testRedisUrl(), prefix, process, tracer: tracing.tracer, logger: jobLogger, concurrency: 1, lockDurationMs: 30_000 });
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
    // A line the job wrote carries its span.
    const works = jobLines.find((line) => line.messageId === 'works');
    const worksSpan = jobs.find((span) => (span.status?.code ?? 0) === 0)!;
    expect(works).toMatchObject({ requestId: `job:${QUEUE_NAME}:works`, traceId: worksSpan.traceId, spanId: worksSpan.spanId });
    expect(worksSpan).toMatchObject({ kind: 5 });
    expect(worksSpan.parentSpanId || undefined).toBeUndefined();
    expect(Object.fromEntries(['messaging.system', 'messaging.destination.name', 'messaging.message.id', 'kocmoc.job'].map((key) => [key, attribute(worksSpan, key)]))).toEqual({
      'messaging.system': 'bullmq',
      'messaging.destination.name': QUEUE_NAME,
      'messaging.message.id': 'works',
      'kocmoc.job': 'fan-out',
    });
    // The 'failed' line, written once the job's span ended, carries the job's request id all the same.
    const failed = jobLines.find((line) => line.msg === 'notification job failed');
    expect(failed).toMatchObject({ requestId: `job:${QUEUE_NAME}:fails`, jobId: 'fails' });
    expect(jobLines.find((line) => line.messageId === 'fails')).toMatchObject({ requestId: `job:${QUEUE_NAME}:fails` });
  });
});

/**
 * A traced app with `env` schedules two sends, one of them with sealed content that no longer opens
 * (AES-GCM refuses it, so its run throws and is retried later), and stops once the first was sent and
 * the second's failure logged (`failedMessage`). Returns each one's `job send` span and what was logged.
 */
// A database of its own: every app's sweep sends whatever is due in its database, so an app of
// another test file starting meanwhile could send these schedules outside the job under test.
const scheduledDatabase = scratchDatabaseUrl('kocmoc_tracing_jobs');

async function traceScheduledSends(env: Record<string, string>, failedMessage: string) {
  const { app } = await startSocketTestApp({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, DATABASE_URL: scheduledDatabase.url, ...env }, { logger });
  const ofJob = (id: string) => (line: Record<string, any>) => String(line.requestId).startsWith(`job:${SCHEDULED_QUEUE_NAME}:scheduled-${id}-`);
  let sent: { id: string };
  let broken: { id: string };
  try {
    const user = await registerUser(app);
    const chatId = await createChat(app, user, { kind: 'GROUP', title: 'later, traced', memberIds: [] });
    // Passes every publish through; the one telling the sender the schedule was sent writes a line of the server-wide logger first.
    const { bus } = app.services.events;
    const publish = bus.publish.bind(bus);
    bus.publish = (channel, payload) => {
      if (channel.startsWith('scheduled:')) app.services.logger.info({ channel }, 'scheduled event probe');
      return publish(channel, payload);
    };
    const schedule = async (text: string, inMs: number) =>
      (await gql(app, SCHEDULE, { input: { chatId, kind: 'TEXT', text, sendAt: new Date(Date.now() + inMs).toISOString() } }, { token: user.accessToken })).data.scheduleMessage;
    sent = await schedule('on time', 800);
    broken = await schedule('unreadable', 1_500);
    const row = await app.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: broken.id } });
    const content = Uint8Array.from(row.content);
    content[content.length - 1]! ^= 0xff;
    await app.services.prisma.scheduledMessage.update({ where: { id: broken.id }, data: { content } });
    await vi.waitFor(
      async () => {
        expect((await app.services.prisma.scheduledMessage.findUniqueOrThrow({ where: { id: sent.id } })).state).toBe('SENT');
        expect(logLines.find((line) => line.msg === failedMessage && ofJob(broken.id)(line))).toBeDefined();
      },
      { timeout: 10_000, interval: 100 },
    );
  } finally {
    // Exports what is still buffered.
    await app.stop();
  }
  const spanOf = (id: string) => named('job send').find((span) => String(attribute(span, 'messaging.message.id')).startsWith(`scheduled-${id}-`))!;
  const span = spanOf(sent.id);
  return {
    span,
    failedSpan: spanOf(broken.id),
    probe: logLines.find((line) => line.msg === 'scheduled event probe' && ofJob(sent.id)(line)),
    failedLine: logLines.find((line) => line.msg === failedMessage && ofJob(broken.id)(line))!,
  };
}

const jobAttributes = (span: ExportedSpan) => ['messaging.system', 'messaging.destination.name', 'kocmoc.job'].map((key) => attribute(span, key));

describe('jobs in the API process (scheduled sends, call timers, the search re-index)', () => {
  beforeAll(async () => {
    await ensureDatabase(scheduledDatabase.url);
    await applyMigrations({ databaseUrl: scheduledDatabase.url });
  });
  afterAll(() => scheduledDatabase.drop());

  it('runs a scheduled send from BullMQ in a `job send` span with its SQL inside, its log lines carrying the job request id; a failed run logs the same id', async () => {
    const { span, failedSpan, probe, failedLine } = await traceScheduledSends({ REDIS_URL: testRedisUrl(), JOB_QUEUE_PREFIX: `kocmoc-test-${randomUUID()}` }, 'scheduled message job failed');
    const jobId = String(attribute(span, 'messaging.message.id'));
    expect(span).toMatchObject({ kind: 5, status: { code: 0 } });
    expect(span.parentSpanId || undefined).toBeUndefined();
    expect(jobAttributes(span)).toEqual(['bullmq', SCHEDULED_QUEUE_NAME, 'send']);
    expect(childrenOf(span).filter((child) => child.name === 'db.query').length).toBeGreaterThan(0);
    expect(probe).toMatchObject({ requestId: `job:${SCHEDULED_QUEUE_NAME}:${jobId}`, traceId: span.traceId, spanId: span.spanId });
    expect(attribute(span, 'kocmoc.request_id')).toBe(probe!.requestId);
    // BullMQ's 'failed' line comes after the span ended, with the same request id all the same.
    expect(failedSpan.status?.code).toBe(2);
    expect(failedLine).toMatchObject({ requestId: `job:${SCHEDULED_QUEUE_NAME}:${String(attribute(failedSpan, 'messaging.message.id'))}`, attempts: 1 });
    expect(failedLine).not.toHaveProperty('traceId');
  });

  it('traces the in-process runner used without Redis the same way', async () => {
    const { span, failedSpan, probe, failedLine } = await traceScheduledSends({}, 'scheduled message run failed');
    expect(jobAttributes(span)).toEqual(['in-process', SCHEDULED_QUEUE_NAME, 'send']);
    expect(probe).toMatchObject({ requestId: `job:${SCHEDULED_QUEUE_NAME}:${String(attribute(span, 'messaging.message.id'))}`, traceId: span.traceId, spanId: span.spanId });
    expect(failedSpan.status?.code).toBe(2);
    expect(failedLine.requestId).toBe(`job:${SCHEDULED_QUEUE_NAME}:${String(attribute(failedSpan, 'messaging.message.id'))}`);
  });
});

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  it('never loads the SDK: the server and job modules import none of it, and only an endpoint makes startTracing load it', () => {
    const script = `
      await import('./src/server/app.ts');
      await import('./src/notifications/queue.ts');
      await import('./src/redis/bull-queue.ts');
      await import('./src/tracing/jobs.ts');
      const { startTracing } = await import('./src/tracing/tracing.ts');
      const defaults = ${JSON.stringify(TRACING_DEFAULTS)};
      console.log(String(await startTracing({ endpoint: undefined, ...defaults })));
      await startTracing({ endpoint: 'http://127.0.0.1:9', ...defaults }).catch((error) => console.log(error.message));`;
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
