// Builds each request's context once: who is asking (viewer and device session) and the services.
import type { GraphQLError } from 'graphql';
import type { PasswordHasher } from './auth/passwords.ts';
import type { SessionCache } from './auth/session-cache.ts';
import type { TokenService } from './auth/tokens.ts';
import type { ContentCipher } from './crypto/content-cipher.ts';
import type { Config } from './env.ts';
import type { FileStorage } from './files/storage.ts';
import type { UploadMemory } from './files/upload-memory.ts';
import { unauthenticated } from './errors.ts';
import type { PrismaClient } from './generated/prisma/client.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { isAdminToken, type Maintenance } from './admin/maintenance.ts';
import type { Notifications } from './notifications/notifications.ts';
import type { ChatFeeds } from './realtime/chat-feed.ts';
import type { Events } from './realtime/events.ts';
import type { PresenceTracker } from './realtime/presence/tracker.ts';
import type { Logger } from './logger.ts';
import type { WorkerPool } from './worker-pool.ts';

/** Long-lived services shared by every request (and by tests and workers). */
export interface Services {
  config: Config;
  prisma: PrismaClient;
  pool: WorkerPool;
  passwords: PasswordHasher;
  tokens: TokenService;
  /** Live sessions, briefly cached (cleared at once when a session ends). */
  sessions: SessionCache;
  /** Seals and opens message content at rest. */
  cipher: ContentCipher;
  /** Where uploaded files are kept (encrypted by src/files before they get here). */
  storage: FileStorage;
  /** Upload bytes held in memory by this process, within UPLOAD_MEMORY_BYTES. */
  uploadMemory: UploadMemory;
  /** Publishes what subscribers see (through Redis when configured). */
  events: Events;
  /** Each chat's events, ordered and shared by this instance's subscribers. */
  chatFeeds: ChatFeeds;
  /** Who has a live connection, across instances. */
  presence: PresenceTracker;
  /** Maintenance mode, shared by all instances. */
  maintenance: Maintenance;
  /** Push notifications: `messageSent()` hands new messages to the job queue. */
  notifications: Pick<Notifications, 'messageSent'>;
  logger: Logger;
}

export interface Viewer {
  userId: string;
  sessionId: string;
}

export interface Context extends Services {
  requestId: string;
  /** Logger bound to this request's id. */
  log: Logger;
  /** The signed-in user, or null when no valid access token came with the request. */
  viewer: Viewer | null;
  /** Why a presented access token was refused; thrown by `requireViewer`. */
  authError: GraphQLError | null;
  userAgent: string | null;
  /** The request carried a valid `x-admin-token`. */
  isAdmin: boolean;
  loaders: Loaders;
  /**
   * The same context with empty loader caches. A subscription's context lives as long as the
   * subscription; each event is executed with fresh loaders so it never shows cached data.
   */
  forEvent(): Context;
}

export interface Authentication {
  viewer: Viewer | null;
  authError: GraphQLError | null;
  /** When the presented access token expires. */
  expiresAt?: Date;
}

export interface ContextInput {
  requestId: string;
  /** The `Authorization` header, checked now; or an authentication done earlier (a WebSocket's, at connect). */
  authorization: string | null | undefined | Authentication;
  userAgent?: string | null;
  /** The `x-admin-token` header, if any. */
  adminToken?: string | null;
}

export async function createContext(services: Services, input: ContextInput): Promise<Context> {
  const { viewer, authError } =
    typeof input.authorization === 'object' && input.authorization !== null
      ? input.authorization
      : await authenticate(services, input.authorization);
  const context: Context = {
    ...services,
    requestId: input.requestId,
    log: services.logger.child({ requestId: input.requestId }),
    viewer,
    authError,
    userAgent: input.userAgent?.slice(0, 512) ?? null,
    isAdmin: isAdminToken(services.config.adminToken, input.adminToken),
    // Reads the viewer late: a request that signs in acts as the new session from then on.
    loaders: createLoaders(services, () => context.viewer?.userId),
    forEvent() {
      const copy: Context = { ...context, loaders: createLoaders(services, () => copy.viewer?.userId) };
      return copy;
    },
  };
  return context;
}

/** The viewer, or the reason there is none as an UNAUTHENTICATED error. */
export function requireViewer(ctx: Pick<Context, 'viewer' | 'authError'>): Viewer {
  if (ctx.viewer) return ctx.viewer;
  throw ctx.authError ?? unauthenticated();
}

/** Checks a `Bearer <accessToken>` value: signature, expiry, and that its session is still live. */
export async function authenticate(services: Pick<Services, 'tokens' | 'sessions'>, authorization: string | null | undefined): Promise<Authentication> {
  if (!authorization) return { viewer: null, authError: null };
  const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  if (!match?.[1]) return { viewer: null, authError: unauthenticated('Authorization must be "Bearer <accessToken>".') };
  const claims = await services.tokens.verifyAccessToken(match[1]);
  if (!claims) return { viewer: null, authError: unauthenticated('Access token is invalid or expired.') };
  // Checking the session on every request makes logout take effect at once, on every instance.
  const sessionUserId = await services.sessions.liveSessionUser(claims.sessionId);
  if (sessionUserId !== claims.userId) {
    return { viewer: null, authError: unauthenticated('Session has ended. Sign in again.') };
  }
  return { viewer: { userId: claims.userId, sessionId: claims.sessionId }, authError: null, expiresAt: claims.expiresAt };
}
