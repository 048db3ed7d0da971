// The abuse-limit settings src/env.ts validates: document limits, rate limits, socket caps and how
// the client's address is found. Each rate reads `POINTS/DURATION`, e.g. `10/15m` (10 per 15
// minutes), optionally `, burst N`: `5/1s, burst 30` allows 30 at once, then 5 a second.
import { z } from 'zod';
import { duration, parseDuration } from '../env-fields.ts';

export interface Rate {
  points: number;
  durationMs: number;
  /** Allowed at once on top of the steady rate (the steady rate's points included). */
  burst?: number;
}

const RATE = /^(\d+)\s*\/\s*([^,]+?)\s*(?:,\s*burst\s+(\d+))?$/;

export function parseRate(value: string): Rate | undefined {
  const match = RATE.exec(value.trim());
  const durationMs = match ? parseDuration(match[2]!) : undefined;
  if (!match || !durationMs || Number(match[1]) < 1) return undefined;
  const burst = match[3] === undefined ? undefined : Number(match[3]);
  if (burst !== undefined && burst < Number(match[1])) return undefined;
  return { points: Number(match[1]), durationMs, burst };
}

const rate = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const parsed = parseRate(value);
      if (!parsed) {
        ctx.addIssue({ code: 'custom', message: `expected a rate like 10/15m or 5/1s, burst 30 (burst at least the points), got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    });

const count = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);

export const limitSettings = {
  /** Most aliases in one GraphQL document (graphql-armor max-aliases). Default 15. */
  MAX_ALIASES: count(15),
  /** Deepest field nesting in a document, introspection's own excepted. Default 10. */
  MAX_DEPTH: count(10),
  /** Most lexical tokens in a document, counted while it is parsed. Default 2000. */
  MAX_TOKENS: count(2_000),
  /** Most directives in a document. Default 50. */
  MAX_DIRECTIVES: count(50),
  /**
   * Highest cost of an operation, computed with its variables before it runs: each object field costs
   * 1 plus its children, a connection or list `first`/`last` (else its default page of 20) times that.
   * Default 5000.
   */
  MAX_COST: count(5_000),
  /** Most files one multipart request may upload (each `uploadFile` takes one). Default 10. */
  MAX_UPLOADS_PER_REQUEST: count(10),
  /** `off` turns every rate limit off (the document limits stay), for load tests and benches only. Default on. */
  RATE_LIMITS: z.enum(['on', 'off']).default('on'),
  /** Failed logins per account from one address before that address is locked out of it. Default 10/15m. */
  RATE_LIMIT_LOGIN_FAILURES: rate('10/15m'),
  /** First lockout after RATE_LIMIT_LOGIN_FAILURES; each further one within a day lasts twice as long. Default 15m. */
  LOGIN_LOCKOUT: duration('15m'),
  /** Longest lockout. Default 24h. */
  LOGIN_LOCKOUT_MAX: duration('24h'),
  /** Failed logins per account from all addresses together before the account is locked. Default 100/1h. */
  RATE_LIMIT_LOGIN_ACCOUNT_FAILURES: rate('100/1h'),
  /** Login and register attempts per address. Default 60/1m. */
  RATE_LIMIT_AUTH_ATTEMPTS: rate('60/1m'),
  /** Accounts registered per address. Default 20/1h. */
  RATE_LIMIT_REGISTER: rate('20/1h'),
  /** refreshToken calls per device session. Default 60/1h (a client refreshes about 4 times an hour). */
  RATE_LIMIT_REFRESH: rate('60/1h'),
  /** searchUsers calls per user. Default 60/1m. */
  RATE_LIMIT_SEARCH: rate('60/1m'),
  /** sendMessage per user and chat. Default 5/1s, burst 30. */
  RATE_LIMIT_SEND_MESSAGE: rate('5/1s, burst 30'),
  /** sendMessage per user over all chats. Default 10/1s, burst 60. */
  RATE_LIMIT_SEND_MESSAGE_TOTAL: rate('10/1s, burst 60'),
  /** setTyping calls per user. Default 2/1s, burst 20. */
  RATE_LIMIT_TYPING: rate('2/1s, burst 20'),
  /** Files uploaded per user. Default 100/1h. */
  RATE_LIMIT_UPLOADS: rate('100/1h'),
  /** Bytes uploaded per user. Default 1073741824/1h (1 GiB an hour). */
  RATE_LIMIT_UPLOAD_BYTES: rate(`${1024 ** 3}/1h`),
  /** addContact calls per user. Default 100/1h. */
  RATE_LIMIT_ADD_CONTACT: rate('100/1h'),
  /** createChat calls per user. Default 50/1h. */
  RATE_LIMIT_CREATE_CHAT: rate('50/1h'),
  /**
   * preKeyBundles calls per (caller, target user): each claims a one-time pre-key of every device of
   * the target, so this keeps anyone from draining them. Default 20/1h.
   */
  RATE_LIMIT_PRE_KEY_BUNDLES: rate('20/1h'),
  /**
   * sendCallSignal calls per call, across its devices: an 8-device mesh sets up 28 pairs at once,
   * each with an offer, an answer and dozens of ICE candidates. Default 200/1s, burst 1000.
   */
  RATE_LIMIT_CALL_SIGNALS: rate('200/1s, burst 1000'),
  /** graphql-ws connection attempts per address. Default 60/1m. */
  RATE_LIMIT_WS_CONNECT: rate('60/1m'),
  /** graphql-ws connections per address (per instance) that have not authenticated yet. Default 20. */
  WS_MAX_UNAUTHENTICATED_PER_ADDRESS: count(20),
  /**
   * Proxy hops in front of the API whose X-Forwarded-For is trusted: 0 (default) takes the client's
   * address from the socket; 1 behind one reverse proxy or Kubernetes ingress (the address it appends).
   */
  TRUST_PROXY: count(0, 0),
};

type LimitEnv = z.output<z.ZodObject<typeof limitSettings>>;

/** The rate limits by name, as the limiters (src/limits/rate-limits.ts) know them. */
export type RateName = keyof ReturnType<typeof toLimitsConfig>['rates'];

export function toLimitsConfig(env: LimitEnv) {
  return {
    document: {
      maxAliases: env.MAX_ALIASES,
      maxDepth: env.MAX_DEPTH,
      maxTokens: env.MAX_TOKENS,
      maxDirectives: env.MAX_DIRECTIVES,
      maxCost: env.MAX_COST,
      maxUploadsPerRequest: env.MAX_UPLOADS_PER_REQUEST,
    },
    rateLimitsEnabled: env.RATE_LIMITS === 'on',
    login: {
      failures: env.RATE_LIMIT_LOGIN_FAILURES,
      accountFailures: env.RATE_LIMIT_LOGIN_ACCOUNT_FAILURES,
      lockoutMs: env.LOGIN_LOCKOUT,
      lockoutMaxMs: env.LOGIN_LOCKOUT_MAX,
    },
    rates: {
      authAttempts: env.RATE_LIMIT_AUTH_ATTEMPTS,
      register: env.RATE_LIMIT_REGISTER,
      refresh: env.RATE_LIMIT_REFRESH,
      search: env.RATE_LIMIT_SEARCH,
      sendMessage: env.RATE_LIMIT_SEND_MESSAGE,
      sendMessageTotal: env.RATE_LIMIT_SEND_MESSAGE_TOTAL,
      typing: env.RATE_LIMIT_TYPING,
      uploads: env.RATE_LIMIT_UPLOADS,
      uploadBytes: env.RATE_LIMIT_UPLOAD_BYTES,
      addContact: env.RATE_LIMIT_ADD_CONTACT,
      createChat: env.RATE_LIMIT_CREATE_CHAT,
      preKeyBundles: env.RATE_LIMIT_PRE_KEY_BUNDLES,
      callSignals: env.RATE_LIMIT_CALL_SIGNALS,
      wsConnect: env.RATE_LIMIT_WS_CONNECT,
    } satisfies Record<string, Rate>,
    webSocket: { maxUnauthenticatedPerAddress: env.WS_MAX_UNAUTHENTICATED_PER_ADDRESS },
    trustProxyHops: env.TRUST_PROXY,
  };
}
