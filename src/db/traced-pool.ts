// A pg pool whose queries are `db.query` spans (only built when tracing is on): each span is
// started where Prisma calls the pool, so it lands under the operation or job that ran the query.
import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import pg from 'pg';

type Query = (...args: unknown[]) => unknown;

function traced(tracer: Tracer, query: Query): Query {
  return function (this: unknown, ...args: unknown[]) {
    const parent = context.active();
    // Inside an operation or job the sampler left out, no span is recorded anyway (parent-based
    // sampling): skip making one, the id generation and attribute copying that a span costs.
    if (trace.getSpan(parent)?.isRecording() === false) return query.apply(this, args);
    const config = args[0] as string | { text?: string; name?: string };
    const text = typeof config === 'string' ? config : (config?.text ?? '');
    const span = tracer.startSpan('db.query', { kind: SpanKind.CLIENT, attributes: { 'db.system': 'postgresql', 'db.statement': text.slice(0, 2_000) } }, parent);
    const result = query.apply(this, args);
    if (!(result instanceof Promise)) {
      span.end();
      return result;
    }
    return result.then(
      (value: unknown) => {
        span.end();
        return value;
      },
      (error: unknown) => {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        span.end();
        throw error;
      },
    );
  };
}

/**
 * `pool.query` is traced where it is called (it checks a client out with a callback, whose queries
 * are then not traced twice); a client checked out with `connect()` (Prisma's transactions) has its
 * queries traced until it is released.
 */
export function tracedPool(config: pg.PoolConfig, tracer: Tracer): pg.Pool {
  const pool = new pg.Pool(config);
  pool.query = traced(tracer, pool.query as Query) as typeof pool.query;
  const connect = pool.connect.bind(pool) as (callback?: unknown) => unknown;
  pool.connect = ((callback?: unknown) => {
    if (callback) return connect(callback);
    return (connect() as Promise<pg.PoolClient>).then((client) => {
      const { query, release } = client;
      client.query = traced(tracer, query as Query) as typeof client.query;
      client.release = (...args: Parameters<typeof release>) => {
        client.query = query;
        client.release = release;
        return release.apply(client, args);
      };
      return client;
    });
  }) as typeof pool.connect;
  return pool;
}
