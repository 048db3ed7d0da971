// The settings src/env.ts validates for what the API shows the world: introspection, GraphiQL, CORS
// and /metrics. Their defaults follow NODE_ENV: open in development, closed in production.
import { z } from 'zod';
import { flag, optionalString } from './env-fields.ts';

const origin = z.string().transform((value, ctx) => {
  try {
    const url = new URL(value);
    if (url.origin !== 'null' && (url.protocol === 'https:' || url.protocol === 'http:')) return url.origin;
  } catch {
    // reported below
  }
  ctx.addIssue({ code: 'custom', message: `expected origins like https://app.example.com (scheme, host, port), or *, got "${value}"` });
  return z.NEVER;
});

const list = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);

export const httpSettings = {
  /** `true` allows schema introspection. Default: true, except with NODE_ENV=production. */
  GRAPHQL_INTROSPECTION: flag.optional(),
  /** `true` serves GraphiQL on GET /graphql. Default: true, except with NODE_ENV=production. */
  GRAPHIQL: flag.optional(),
  /**
   * Comma-separated origins browsers may call the API from (`https://app.example.com`), or `*` for any.
   * Default: any in development and test, none in production. Credentials are never allowed: the API
   * takes bearer tokens, not cookies.
   */
  CORS_ORIGINS: optionalString.transform((value, ctx) => {
    if (value === undefined) return undefined;
    if (value.trim() === '*') return '*' as const;
    return list(value).map((entry) => {
      const parsed = origin.safeParse(entry);
      if (!parsed.success) ctx.addIssue({ code: 'custom', message: parsed.error.issues[0]!.message });
      return parsed.success ? parsed.data : '';
    });
  }),
  /**
   * The API's public origin (`https://chat.example.com`): links the API hands out (Attachment.url,
   * thumbnailUrl, User.avatarUrl, exportMyData) are absolute under it. Default: each request's own
   * origin (its Host header; for graphql-ws, the upgrade request's). Set it behind a proxy.
   */
  PUBLIC_URL: optionalString.pipe(origin.optional()),
  /** Bearer token GET /metrics requires (16+ characters). In production /metrics needs it or METRICS_PORT. */
  METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must be at least 16 characters').optional()),
  /** Serve /metrics on a port of its own (on METRICS_HOST) instead of the API's. Unset: on the API's port. */
  METRICS_PORT: optionalString.transform((v) => (v === undefined ? undefined : Number(v))).pipe(z.number().int().min(0).max(65_535).optional()),
  /** Interface of METRICS_PORT. Default 127.0.0.1: keep it internal (a pod IP or private network). */
  METRICS_HOST: z.string().default('127.0.0.1'),
  /**
   * Comma-separated operation names your clients send, kept as metric labels; any other is counted as
   * `other` (unnamed ones as `anonymous`), so /metrics cannot grow with what clients make up.
   */
  METRICS_OPERATION_NAMES: optionalString,
  /** `false` turns automatic persisted queries off. Default true (stored in Redis when REDIS_URL is set). */
  APQ: flag.default(true),
  /**
   * Trusted documents: a JSON manifest `{ "<id>": "<document>" }` (GraphQL Code Generator's
   * persisted-documents.json) whose ids clients send as `extensions.persistedQuery.sha256Hash`.
   */
  PERSISTED_OPERATIONS_FILE: optionalString,
  /** `true` runs only the manifest's documents (requires PERSISTED_OPERATIONS_FILE; APQ is then off). Default false. */
  PERSISTED_OPERATIONS_ONLY: flag.default(false),
};

type HttpEnv = z.output<z.ZodObject<typeof httpSettings>>;

export function toHttpConfig(env: HttpEnv, production: boolean) {
  return {
    introspection: env.GRAPHQL_INTROSPECTION ?? !production,
    graphiql: env.GRAPHIQL ?? !production,
    /** `*` for any origin, else the origins allowed (none: no CORS headers at all). */
    corsOrigins: env.CORS_ORIGINS ?? (production ? [] : ('*' as const)),
    persistedOperations: {
      manifestFile: env.PERSISTED_OPERATIONS_FILE,
      only: env.PERSISTED_OPERATIONS_ONLY,
      /** Registering documents would defeat a manifest-only server. */
      apq: env.APQ && !env.PERSISTED_OPERATIONS_ONLY,
    },
    /** PUBLIC_URL's origin, or null: each request's own. */
    publicUrl: env.PUBLIC_URL ?? null,
    metrics: {
      token: env.METRICS_TOKEN,
      port: env.METRICS_PORT,
      host: env.METRICS_HOST,
      operationNames: new Set(list(env.METRICS_OPERATION_NAMES)),
      /** Production serves /metrics only behind METRICS_TOKEN or on METRICS_PORT. */
      open: !production || env.METRICS_TOKEN !== undefined,
    },
  };
}
