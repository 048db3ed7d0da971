// OpenTelemetry spans of each GraphQL operation: one `graphql.operation` span (the client's
// traceparent, if any, as its parent) with `graphql.parse` and `graphql.validate` children when the
// document was parsed and validated rather than found in Yoga's cache, a `graphql.execute` child,
// and `graphql.resolve` spans for resolvers that took at least the threshold. Execution runs
// inside the execute span's context, so what it calls (Prisma, the worker pool, log lines) finds it.
// Only registered when tracing is on (src/tracing/tracing.ts).
import { context as otel, propagation, SpanKind, SpanStatusCode, trace, type Context as OtelContext, type Span, type Tracer } from '@opentelemetry/api';
import { getOperationAST, isIntrospectionType, isObjectType, type DocumentNode, type ExecutionResult, type GraphQLError, type GraphQLFieldResolver, type GraphQLResolveInfo } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Logger } from '../../logger.ts';
import { withRequestId } from '../../tracing/tracing.ts';

/** What the tracing reads of an operation's context (src/context.ts, once Yoga built it). */
interface TracedContext {
  request?: Request;
  requestId?: string;
  log?: Logger;
}

interface OperationTrace {
  span: Span;
  /** Context of the operation span (parse and validate) and later of the execute span (resolvers). */
  context: OtelContext;
  /** False when the sampler left the operation out: its resolvers are not even timed. */
  recording: boolean;
  tracer: Tracer;
  resolverThresholdMs: number;
}

/**
 * By request context. Module-wide because the resolvers are wrapped once, in the schema every app
 * of a process shares (src/schema/index.ts): a wrapper finds the plugin instance through this.
 */
const operations = new WeakMap<object, OperationTrace>();

const headerGetter = {
  keys: (headers: Headers) => [...headers.keys()],
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
};

function failed(span: Span, errors: ReadonlyArray<GraphQLError | Error> | undefined) {
  if (!errors || errors.length === 0) return;
  span.setStatus({ code: SpanStatusCode.ERROR, message: errors[0]!.message });
  span.setAttribute('graphql.error.codes', [...new Set(errors.map((error) => String((error as GraphQLError).extensions?.code ?? 'INTERNAL')))]);
}

const pathOf = (path: { prev: unknown; key: string | number } | undefined): string => {
  const keys: Array<string | number> = [];
  for (let at = path; at; at = at.prev as typeof path) keys.unshift(at.key);
  return keys.join('.');
};

const isDefaultResolver = (resolve: GraphQLFieldResolver<unknown, unknown> | undefined) =>
  !resolve || resolve.name === 'defaultFieldResolver' || resolve.name === 'defaultMergedResolver';

const isThenable = (value: unknown): value is PromiseLike<unknown> => typeof (value as PromiseLike<unknown> | null)?.then === 'function';

const WRAPPED = Symbol('kocmoc.traced-resolver');

/**
 * Documents parsed and validation results computed in this process. Yoga's cache hands the same
 * object back for a document it has seen, so one seen before means the phase did no work: it gets
 * no span of its own (a span cost more than the cache lookup it would time), and the operation
 * says `graphql.document.cached`. Most operations of a client are cached ones.
 */
const parsedDocuments = new WeakSet<object>();
const validationResults = new WeakSet<object>();

/** True the first time `result` is seen: the phase produced it rather than the cache. */
function worked(seen: WeakSet<object>, result: object): boolean {
  if (seen.has(result)) return false;
  seen.add(result);
  return true;
}

/**
 * A resolver that took at least the threshold gets its span after the fact (its start time
 * given): the far more common fast ones cost two clock reads and no span at all.
 */
function resolved(operation: OperationTrace, info: GraphQLResolveInfo, started: number) {
  const ms = performance.now() - started;
  if (ms < operation.resolverThresholdMs) return;
  const attributes = { 'graphql.field.path': pathOf(info.path), 'graphql.field.type': String(info.returnType) };
  const startTime = performance.timeOrigin + started;
  operation.tracer.startSpan(`graphql.resolve ${info.parentType.name}.${info.fieldName}`, { startTime, attributes }, operation.context).end(startTime + ms);
}

/** Times `resolve` inside a recorded operation, with no closure or object per call beyond what a promise result needs. */
const timed = (resolve: GraphQLFieldResolver<unknown, object>): GraphQLFieldResolver<unknown, object> =>
  function tracedResolver(source, args, context, info) {
    const operation = operations.get(context);
    if (operation === undefined || !operation.recording) return resolve(source, args, context, info);
    const started = performance.now();
    let result: unknown;
    try {
      result = resolve(source, args, context, info);
    } catch (error) {
      resolved(operation, info, started);
      throw error;
    }
    if (!isThenable(result)) {
      resolved(operation, info, started);
      return result;
    }
    return result.then(
      (value) => {
        resolved(operation, info, started);
        return value;
      },
      (error: unknown) => {
        resolved(operation, info, started);
        throw error;
      },
    );
  };

export function useTracing(tracer: Tracer, { resolverThresholdMs }: { resolverThresholdMs: number }): Plugin {

  const operationOf = (context: { request?: Request }): OperationTrace => {
    let operation = operations.get(context);
    if (!operation) {
      const parent = context.request ? propagation.extract(otel.active(), context.request.headers, headerGetter) : otel.active();
      const span = tracer.startSpan('graphql.operation', { kind: SpanKind.SERVER }, parent);
      operation = { span, context: trace.setSpan(parent, span), recording: span.isRecording(), tracer, resolverThresholdMs };
      operations.set(context, operation);
    }
    return operation;
  };

  const endOperation = (context: object, errors?: ReadonlyArray<GraphQLError | Error>) => {
    const operation = operations.get(context);
    if (!operation) return;
    operations.delete(context);
    failed(operation.span, errors);
    operation.span.end();
  };

  /** A parse or validate span, made once the phase is over (its start time given). */
  const phaseSpan = (operation: OperationTrace, name: string, started: number, errors?: ReadonlyArray<GraphQLError | Error>) => {
    const startTime = performance.timeOrigin + started;
    const span = tracer.startSpan(name, { startTime }, operation.context);
    failed(span, errors);
    span.end();
  };

  type Run = (executionArgs: never) => unknown;
  /** Starts the execute (or subscribe) span; `run` then runs in its context, through `setRun`. */
  const execution = (
    kind: 'execute' | 'subscribe',
    args: { contextValue: TracedContext; document: DocumentNode; operationName?: string | null },
    run: Run,
    setRun: (run: Run) => void,
  ) => {
    const operation = operationOf(args.contextValue);
    const request = args.contextValue;
    if (operation.recording) {
      // The request's log lines written after execution (its errors) carry the trace too; inside
      // it, every logger's lines get it from the active context (src/logger.ts).
      const { traceId, spanId } = operation.span.spanContext();
      if (request.log) request.log = request.log.child({ traceId, spanId });
      const ast = getOperationAST(args.document, args.operationName);
      const type = ast?.operation ?? 'query';
      const name = ast?.name?.value ?? '';
      operation.span.updateName(`${type} ${name || args.operationName || 'anonymous'}`);
      operation.span.setAttributes({ 'kocmoc.request_id': request.requestId ?? '', 'graphql.operation.type': type, 'graphql.operation.name': name });
    }
    if (!operation.recording) {
      // Left out by the sampler: no execute span, only the request id for the log lines inside.
      const unsampled = withRequestId(operation.context, request.requestId);
      setRun((executionArgs) => otel.with(unsampled, run, undefined, executionArgs));
      return (errors?: ReadonlyArray<GraphQLError>) => endOperation(args.contextValue, errors);
    }
    // Yoga builds the request's context (its id) after parsing and validating.
    const span = tracer.startSpan(`graphql.${kind}`, {}, operation.context);
    const spanContext = trace.setSpan(withRequestId(operation.context, request.requestId), span);
    operation.context = spanContext;
    setRun((executionArgs) => otel.with(spanContext, run, undefined, executionArgs));
    const done = (errors?: ReadonlyArray<GraphQLError>) => {
      failed(span, errors);
      span.end();
      endOperation(args.contextValue, errors);
    };
    return done;
  };

  return {
    onSchemaChange({ schema }) {
      // Every resolver but graphql-js's default (a property read) and introspection's is timed,
      // wrapped once however many apps share the schema.
      for (const type of Object.values(schema.getTypeMap())) {
        if (!isObjectType(type) || isIntrospectionType(type)) continue;
        for (const field of Object.values(type.getFields())) {
          const marked = field as typeof field & { [WRAPPED]?: true };
          if (marked[WRAPPED] || isDefaultResolver(field.resolve)) continue;
          field.resolve = timed(field.resolve as GraphQLFieldResolver<unknown, object>);
          marked[WRAPPED] = true;
        }
      }
    },
    onParse({ context }) {
      const operation = operationOf(context);
      if (!operation.recording) return undefined;
      const started = performance.now();
      return ({ result }) => {
        if (result instanceof Error) {
          phaseSpan(operation, 'graphql.parse', started, [result]);
          endOperation(context, [result]);
        } else if (result && !worked(parsedDocuments, result)) {
          operation.span.setAttribute('graphql.document.cached', true);
        } else {
          phaseSpan(operation, 'graphql.parse', started);
        }
      };
    },
    onValidate({ context }) {
      const operation = operationOf(context);
      if (!operation.recording) return undefined;
      const started = performance.now();
      return ({ valid, result }) => {
        if (!valid) {
          phaseSpan(operation, 'graphql.validate', started, result);
          endOperation(context, result);
        } else if (worked(validationResults, result)) {
          phaseSpan(operation, 'graphql.validate', started);
        }
      };
    },
    onExecute({ args, executeFn, setExecuteFn }) {
      const done = execution('execute', args as never, executeFn as Run, setExecuteFn as never);
      return {
        onExecuteDone({ result }) {
          // @defer and @stream: the operation ends with its last part.
          if (!isAsyncIterable(result)) return done((result as ExecutionResult).errors);
          const errors: GraphQLError[] = [];
          return { onNext: ({ result: part }) => void errors.push(...((part as ExecutionResult).errors ?? [])), onEnd: () => done(errors) };
        },
      };
    },
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      // A subscription's span covers setting it up; its events are not traced.
      const done = execution('subscribe', args as never, subscribeFn as Run, setSubscribeFn as never);
      return { onSubscribeResult: ({ result }) => done(isAsyncIterable(result) ? undefined : (result as ExecutionResult).errors) };
    },
  };
}
