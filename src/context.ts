// Builds each request's context once: who is asking (viewer and device session), loaders, and the
// services. HTTP requests and graphql-ws operations both get theirs here (server/app.ts).
import type { GraphQLError } from 'graphql';
import { isAdminToken } from './admin/maintenance.ts';
import { authenticate, type Authentication, type Viewer } from './auth/authenticate.ts';
import { LOCAL_ADDRESS } from './limits/client-address.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import type { Logger } from './logger.ts';
import type { Services } from './services.ts';

export interface Context extends Services {
  requestId: string;
  /** Logger bound to this request's id. */
  log: Logger;
  /** The signed-in user, or null when no valid access token came with the request. */
  viewer: Viewer | null;
  /** Why a presented access token was refused; thrown by `requireViewer`. */
  authError: GraphQLError | null;
  userAgent: string | null;
  /** The client's address (limits/client-address.ts), for per-address limits; `local` in-process. */
  clientAddress: string;
  /** The request carried a valid `x-admin-token`. */
  isAdmin: boolean;
  /** Where the API's links point: PUBLIC_URL, else the origin the request came to. */
  origin: string;
  loaders: Loaders;
  /**
   * The client for reads that may lag behind writes for others (history, search, profiles): a read
   * replica when configured, the primary for a while after this session's own mutation.
   */
  reader(): Promise<Services['prisma']>;
  /**
   * The same context with empty loader caches. A subscription's context lives as long as the
   * subscription; each event is executed with fresh loaders so it never shows cached data.
   */
  forEvent(): Context;
}

export interface ContextInput {
  requestId: string;
  /** The `Authorization` header, checked now; or an authentication done earlier (a WebSocket's, at connect). */
  authorization: string | null | undefined | Authentication;
  userAgent?: string | null;
  /** From the socket, or X-Forwarded-For behind TRUST_PROXY hops (server/app.ts, server/websocket.ts). */
  clientAddress?: string;
  /** The `x-admin-token` header, if any. */
  adminToken?: string | null;
  /** The origin the request came to (`https://host`); PUBLIC_URL replaces it. */
  origin?: string;
}

/** In-process callers (the CLI, tests through `yoga.fetch` without a URL) get links under this. */
const LOCAL_ORIGIN = 'http://localhost';

export async function createContext(services: Services, input: ContextInput): Promise<Context> {
  const { viewer, authError } =
    typeof input.authorization === 'object' && input.authorization !== null
      ? input.authorization
      : await authenticate(services, input.authorization);
  let readerOnce: Promise<Services['prisma']> | undefined;
  const context: Context = {
    ...services,
    requestId: input.requestId,
    log: services.logger.child({ requestId: input.requestId }),
    viewer,
    authError,
    userAgent: input.userAgent?.slice(0, 512) ?? null,
    clientAddress: input.clientAddress ?? LOCAL_ADDRESS,
    isAdmin: isAdminToken(services.config.adminToken, input.adminToken),
    origin: services.config.exposure.publicUrl ?? input.origin ?? LOCAL_ORIGIN,
    // Reads the viewer late: a request that signs in acts as the new session from then on.
    loaders: createLoaders(services, () => context.viewer?.userId, () => context.viewer?.sessionId),
    // At most one look-up of the session's mark per request (a Redis EXISTS with replicas and Redis).
    reader: () => (readerOnce ??= services.reads.reader(context.viewer?.sessionId)),
    forEvent() {
      const copy: Context = { ...context, loaders: createLoaders(services, () => copy.viewer?.userId, () => copy.viewer?.sessionId) };
      return copy;
    },
  };
  return context;
}
