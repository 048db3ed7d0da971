// Fan-out without re-running the same work: when one event reaches many subscribers with the same
// operation, its selection is executed once and the result shared. Results are shared only between
// subscribers who may see the same thing: operations that select a viewer-dependent field (marked
// with `extensions: { viewerDependent: true }` in the schema) are executed once per viewer, and
// those selecting a field that depends on the viewer's device session (`viewerDependent: 'session'`,
// such as the envelope addressed to that device) once per session; and subscribers whose variables
// differ only in the root field's arguments (which pick the events, as `chatId` and `sinceSeq` do)
// share the same executions.
import {
  createSourceEventStream,
  execute,
  Kind,
  print,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type ASTNode,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import { isDatabaseUnavailable } from '../db/errors.ts';
import type { InFlight } from '../in-flight.ts';
import { unavailable } from '../errors.ts';
import { deliveryTurn } from './delivery-turns.ts';
import { frameSinkOf, type FrameSink } from './shared-frames.ts';
import { readsUnavailable, retrying } from '../realtime/retry.ts';
import { tooManyUndelivered } from '../realtime/stream.ts';

/** Results per event payload, per operation key; dropped with the payload. */
const resultsByEvent = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();
const printedDocuments = new WeakMap<DocumentNode, string>();
const viewerDependentDocuments = new WeakMap<DocumentNode, ViewerDependence>();

/** What an operation's result depends on besides the event: nothing, the viewer, or the viewer's device session. */
type ViewerDependence = false | 'user' | 'session';
const resultVariablesOfDocuments = new WeakMap<DocumentNode, ReadonlySet<string>>();

export interface SubscriptionExecution {
  /** Envelop plugin: replaces the subscribe function with one that shares per-event execution. */
  plugin: Plugin;
  /**
   * Ends every live subscription, and each one started from now on (the endings are tracked
   * in-flight work). A client still reading (an HTTP event stream; sockets are closed before)
   * gets an UNAVAILABLE error before the end, which tells it to resubscribe elsewhere.
   */
  close(): void;
}

export interface SubscriptionExecutionOptions {
  /**
   * How long an event whose execution failed because the database was out of reach is executed
   * again (with backoff) before its subscription ends with UNAVAILABLE (FEED_GAP_TIMEOUT_MS).
   */
  retryTimeoutMs: number;
}

/**
 * Subscriptions of one app. Set-ups and endings (which wait for the execution under way) are
 * tracked in `inFlight`, so shutdown can wait for them before it closes the database.
 */
export function createSubscriptionExecution(inFlight: InFlight, { retryTimeoutMs }: SubscriptionExecutionOptions): SubscriptionExecution {
  const live = new Set<ResultStream>();
  let closed = false;

  const subscribe = async (args: ExecutionArgs) => {
    const source = await inFlight.track(createSourceEventStream(args));
    if (!isAsyncIterable(source)) return source;
    const key = operationKey(args);
    const results = executeEach(source[Symbol.asyncIterator](), (payload, attempt) => executeForEvent(args, payload, key, attempt), {
      inFlight,
      retryTimeoutMs,
      onEnd: () => live.delete(results),
      sink: frameSinkOf(args.contextValue),
    });
    live.add(results);
    if (closed) results.endWith(shuttingDown());
    return results;
  };

  return {
    plugin: {
      onSubscribe({ setSubscribeFn }) {
        setSubscribeFn(subscribe as never);
      },
    },
    close() {
      closed = true;
      for (const results of live) results.endWith(shuttingDown());
    },
  };
}

const shuttingDown = (): ExecutionResult => ({
  errors: [unavailable('The server is shutting down: resubscribe (messageEvents with sinceSeq set to the last seq you received).')],
});

type ResultStream = Required<AsyncIterableIterator<ExecutionResult>> & {
  /** Ends the stream from the server's side: a reader still there gets `last`, then the end. */
  endWith(last: ExecutionResult): void;
};

const DONE = { value: undefined, done: true } as const;
/** A result the sink wrote to the socket itself: the reader's `next()` goes on waiting. */
const WRITTEN = Symbol('written');
type Step = IteratorResult<ExecutionResult> | typeof WRITTEN;

/** Whether a result failed only for now: the database was out of reach while it was executed. */
const failedForNow = (result: ExecutionResult) => result.errors?.some((error) => isDatabaseUnavailable(error.originalError)) ?? false;

class RetryLater extends Error {}

/**
 * Executes each event the source yields. Once ended (the client completed the operation or the
 * socket closed), no further event is executed and a result still being computed is dropped;
 * `return()` resolves once the source has ended and that execution has settled. An execution that
 * failed for want of the database is run again (never sent half-empty: the subscriber would lose
 * that event), and past `retryTimeoutMs` the subscription ends with UNAVAILABLE instead. With a
 * `sink` (a graphql-ws subscription, shared-frames.ts), error-free results are written as frames
 * while the reader's `next()` waits; it settles with the rest.
 */
function executeEach(
  source: AsyncIterator<unknown>,
  executeEvent: (payload: unknown, attempt: number) => Promise<ExecutionResult> | ExecutionResult,
  { inFlight, retryTimeoutMs, onEnd, sink }: { inFlight: InFlight; retryTimeoutMs: number; onEnd: () => void; sink?: FrameSink },
): ResultStream {
  let ended: Promise<unknown> | undefined;
  let executing: Promise<ExecutionResult> | undefined;
  const end = () => {
    ended ??= inFlight.track(Promise.allSettled([source.return?.(), executing])).finally(onEnd);
    return ended.then(() => DONE);
  };
  // Promise chains rather than an async function with awaits: this runs once per delivery, for
  // every subscriber, and each await is another turn of the microtask queue.
  /** What endWith left for the reader: handed out once, then the end. */
  let last: ExecutionResult | undefined;
  const lastOrDone = () => {
    const value = last;
    last = undefined;
    return value ? { value, done: false as const } : DONE;
  };
  /**
   * Written by the sink, or handed to the reader (results with errors, and all of them without a
   * sink). A reader too far behind fails, as one whose stream overflowed does: graphql-ws sends an
   * `error` message, never a `complete`, so the client resubscribes.
   */
  const handOver = (value: ExecutionResult): Step | Promise<Step> => {
    if (ended) return lastOrDone();
    if (!sink || value.errors) return { value, done: false };
    const written = sink.write(value);
    if (written === 'sent') return WRITTEN;
    if (written === 'closed') return { value, done: false };
    return fail(tooManyUndelivered());
  };
  // Each delivery waits for its turn (delivery-turns.ts), so thousands of local subscribers of one
  // event do not write their sockets in one run while HTTP requests wait. Ended meanwhile (by
  // endWith too): what endWith left, if anything, instead of the event.
  const deliver = (value: ExecutionResult): Step | Promise<Step> => {
    if (ended) return lastOrDone();
    const turn = deliveryTurn();
    return turn ? turn.then(() => handOver(value)) : handOver(value);
  };
  const fail = (error: unknown) =>
    end().then(() => {
      throw error;
    });
  /** The slow path, after a first execution failed for now: attempts 1, 2, … until one succeeds. */
  const executeAgain = (payload: unknown) => {
    let attempt = 0;
    const again = retrying(
      async () => {
        const result = await executeEvent(payload, ++attempt);
        if (failedForNow(result)) throw new RetryLater();
        return result;
      },
      { timeoutMs: retryTimeoutMs, stopped: () => ended !== undefined, retryable: (error) => error instanceof RetryLater },
    );
    executing = again;
    // Ended meanwhile: the retries stopped for a subscriber who is gone, nothing to tell.
    return again.then(deliver, (error: unknown) => (ended ? DONE : fail(error instanceof RetryLater ? readsUnavailable() : error)));
  };
  const settle = (payload: unknown, result: ExecutionResult) => (failedForNow(result) && !ended ? executeAgain(payload) : deliver(result));
  /** The next source event, executed and delivered. */
  const nextStep = (): Promise<Step> =>
    source.next().then((event): Step | Promise<Step> => {
      if (event.done) return end().then(lastOrDone);
      if (ended) return DONE;
      let result: Promise<ExecutionResult> | ExecutionResult;
      try {
        result = executeEvent(event.value, 0);
      } catch (error) {
        return fail(error);
      }
      if (!(result instanceof Promise)) return settle(event.value, result);
      executing = result;
      return result.then((value) => settle(event.value, value), fail);
    }, fail);
  const iterator: ResultStream = {
    [Symbol.asyncIterator]: () => iterator,
    next() {
      if (ended) return Promise.resolve(lastOrDone());
      if (!sink) return nextStep() as Promise<IteratorResult<ExecutionResult>>;
      // Each written step starts a fresh chain: resolving one promise with the next would keep every
      // step of a long subscription alive.
      return new Promise<IteratorResult<ExecutionResult>>((resolve, reject) => {
        const take = (step: Step) => (step === WRITTEN ? void nextStep().then(take, reject) : resolve(step));
        nextStep().then(take, reject);
      });
    },
    return: end,
    endWith(result) {
      if (ended) return;
      last = result;
      void end();
    },
    async throw(error?: unknown) {
      await end();
      throw error;
    },
  };
  return iterator;
}

/** Attempt 0 is the first execution; later attempts (after the database was out of reach) are shared the same way. */
function executeForEvent(args: ExecutionArgs, payload: unknown, key: string, attempt: number) {
  const run = () => execute({ ...args, rootValue: payload, contextValue: (args.contextValue as Context).forEvent() });
  if (payload === null || typeof payload !== 'object') return run();
  let results = resultsByEvent.get(payload);
  if (!results) resultsByEvent.set(payload, (results = new Map()));
  const attemptKey = attempt === 0 ? key : `${key}\u0001${attempt}`;
  let result = results.get(attemptKey);
  if (!result) {
    const running = run();
    results.set(attemptKey, running);
    // Once there, the result itself: the subscribers still to come take it without a promise hop each.
    if (running instanceof Promise) running.then((done) => results.get(attemptKey) === running && results.set(attemptKey, done), () => {});
    result = running;
  }
  return result;
}

/**
 * A subscription that could not start (NOT_FOUND, UNAVAILABLE, …) as a stream that fails with its
 * first error. graphql-ws then sends an `error` message, which clients take for an error, instead
 * of a `next` carrying the errors and a `complete`, which they take for a normal end.
 */
export function failedStartAsError(result: unknown): unknown {
  if (isAsyncIterable(result)) return result;
  const error = (result as ExecutionResult | undefined)?.errors?.[0];
  if (!error) return result;
  const failing: AsyncIterableIterator<never> = {
    [Symbol.asyncIterator]: () => failing,
    next: () => Promise.reject(error),
    return: () => Promise.resolve(DONE),
  };
  return failing;
}

/** Subscribers with equal keys get equal results for the same event. */
function operationKey(args: ExecutionArgs): string {
  const dependence = viewerDependence(args.schema, args.document);
  const viewerOf = (args.contextValue as Context | undefined)?.viewer;
  const viewer = !dependence ? '*' : dependence === 'session' ? `${viewerOf?.userId ?? ''}/${viewerOf?.sessionId ?? ''}` : (viewerOf?.userId ?? '');
  const variables = args.variableValues ?? {};
  const used = resultVariables(args.document);
  const values = Object.keys(variables)
    .filter((name) => used.has(name))
    .sort()
    .map((name) => [name, variables[name]]);
  return [printed(args.document), args.operationName ?? '', JSON.stringify(values), viewer].join('\u0000');
}

/**
 * The variables an event's result can depend on: all but those used only in the arguments of the
 * operation's root fields. Those choose which events a subscription gets (a chat, the position it
 * resumes from); every root subscription field resolves to the event itself (schema/realtime.ts),
 * so subscribers who differ only there, as resumed ones do in `sinceSeq`, share executions.
 */
function resultVariables(document: DocumentNode): ReadonlySet<string> {
  let names = resultVariablesOfDocuments.get(document);
  if (names) return names;
  const found = new Set<string>();
  const collect = (node: ASTNode | undefined) => node && visit(node, { Variable: (variable) => void found.add(variable.name.value) });
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) {
      collect(definition);
      continue;
    }
    definition.directives?.forEach(collect);
    for (const selection of definition.selectionSet.selections) {
      if (selection.kind !== Kind.FIELD) collect(selection);
      else {
        selection.directives?.forEach(collect);
        collect(selection.selectionSet);
      }
    }
  }
  resultVariablesOfDocuments.set(document, (names = found));
  return names;
}

function printed(document: DocumentNode): string {
  let text = printedDocuments.get(document);
  if (text === undefined) printedDocuments.set(document, (text = print(document)));
  return text;
}

export function isViewerDependent(schema: GraphQLSchema, document: DocumentNode): boolean {
  return viewerDependence(schema, document) !== false;
}

function viewerDependence(schema: GraphQLSchema, document: DocumentNode): ViewerDependence {
  let dependent = viewerDependentDocuments.get(document);
  if (dependent === undefined) {
    let found: ViewerDependence = false;
    const typeInfo = new TypeInfo(schema);
    visit(
      document,
      visitWithTypeInfo(typeInfo, {
        Field() {
          const marked = typeInfo.getFieldDef()?.extensions?.viewerDependent;
          if (marked === 'session') found = 'session';
          else if (marked && !found) found = 'user';
        },
      }),
    );
    viewerDependentDocuments.set(document, (dependent = found));
  }
  return dependent;
}
