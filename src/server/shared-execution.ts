// Fan-out without re-running the same work: when one event reaches many subscribers with the same
// operation, its selection is executed once and the result shared. Results are shared only between
// subscribers who may see the same thing: operations that select a viewer-dependent field (marked
// with `extensions: { viewerDependent: true }` in the schema) are executed once per viewer, and
// those selecting a field that depends on the viewer's device session (`viewerDependent: 'session'`,
// such as the envelope addressed to that device) once per session.
import {
  createSourceEventStream,
  execute,
  print,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import type { Context } from '../context.ts';
import type { InFlight } from '../in-flight.ts';

/** Results per event payload, per operation key; dropped with the payload. */
const resultsByEvent = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();
const printedDocuments = new WeakMap<DocumentNode, string>();
const viewerDependentDocuments = new WeakMap<DocumentNode, ViewerDependence>();

/** What an operation's result depends on besides the event: nothing, the viewer, or the viewer's device session. */
type ViewerDependence = false | 'user' | 'session';

export interface SubscriptionExecution {
  /** Envelop plugin: replaces the subscribe function with one that shares per-event execution. */
  plugin: Plugin;
  /** Ends every live subscription, and each one started from now on (the endings are tracked in-flight work). */
  close(): void;
}

/**
 * Subscriptions of one app. Set-ups and endings (which wait for the execution under way) are
 * tracked in `inFlight`, so shutdown can wait for them before it closes the database.
 */
export function createSubscriptionExecution(inFlight: InFlight): SubscriptionExecution {
  const live = new Set<ResultStream>();
  let closed = false;

  const subscribe = async (args: ExecutionArgs) => {
    const source = await inFlight.track(createSourceEventStream(args));
    if (!isAsyncIterable(source)) return source;
    const key = operationKey(args);
    const results = executeEach(source[Symbol.asyncIterator](), (payload) => executeForEvent(args, payload, key), {
      inFlight,
      onEnd: () => live.delete(results),
    });
    live.add(results);
    if (closed) void results.return();
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
      for (const results of live) void results.return();
    },
  };
}

type ResultStream = Required<AsyncIterableIterator<ExecutionResult>>;

const DONE = { value: undefined, done: true } as const;

/**
 * Executes each event the source yields. Once ended (the client completed the operation or the
 * socket closed), no further event is executed and a result still being computed is dropped;
 * `return()` resolves once the source has ended and that execution has settled.
 */
function executeEach(
  source: AsyncIterator<unknown>,
  executeEvent: (payload: unknown) => Promise<ExecutionResult> | ExecutionResult,
  { inFlight, onEnd }: { inFlight: InFlight; onEnd: () => void },
): ResultStream {
  let ended: Promise<unknown> | undefined;
  let executing: Promise<ExecutionResult> | undefined;
  const end = () => {
    ended ??= inFlight.track(Promise.allSettled([source.return?.(), executing])).finally(onEnd);
    return ended.then(() => DONE);
  };
  // Promise chains rather than an async function with awaits: this runs once per delivery, for
  // every subscriber, and each await is another turn of the microtask queue.
  const deliver = (value: ExecutionResult) => (ended ? DONE : { value, done: false as const });
  const fail = (error: unknown) =>
    end().then(() => {
      throw error;
    });
  const iterator: ResultStream = {
    [Symbol.asyncIterator]: () => iterator,
    next() {
      if (ended) return Promise.resolve(DONE);
      return source.next().then((event) => {
        if (event.done) return end();
        if (ended) return DONE;
        let result: Promise<ExecutionResult> | ExecutionResult;
        try {
          result = executeEvent(event.value);
        } catch (error) {
          return fail(error);
        }
        if (!(result instanceof Promise)) return deliver(result);
        executing = result;
        return result.then(deliver, fail);
      }, fail);
    },
    return: end,
    async throw(error?: unknown) {
      await end();
      throw error;
    },
  };
  return iterator;
}

function executeForEvent(args: ExecutionArgs, payload: unknown, key: string) {
  const run = () => execute({ ...args, rootValue: payload, contextValue: (args.contextValue as Context).forEvent() });
  if (payload === null || typeof payload !== 'object') return run();
  let results = resultsByEvent.get(payload);
  if (!results) resultsByEvent.set(payload, (results = new Map()));
  let result = results.get(key);
  if (!result) {
    result = run();
    results.set(key, result);
  }
  return result;
}

/** Subscribers with equal keys get equal results for the same event. */
function operationKey(args: ExecutionArgs): string {
  const dependence = viewerDependence(args.schema, args.document);
  const viewerOf = (args.contextValue as Context | undefined)?.viewer;
  const viewer = !dependence ? '*' : dependence === 'session' ? `${viewerOf?.userId ?? ''}/${viewerOf?.sessionId ?? ''}` : (viewerOf?.userId ?? '');
  return [printed(args.document), args.operationName ?? '', JSON.stringify(args.variableValues ?? {}), viewer].join('\u0000');
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
