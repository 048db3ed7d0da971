// Who is asking: checks a `Bearer <accessToken>` value once per HTTP request, or once per
// WebSocket at connect, and gives resolvers the viewer or the reason there is none.
import type { GraphQLError } from 'graphql';
import { unauthenticated } from '../errors.ts';
import type { Services } from '../services.ts';

export interface Viewer {
  userId: string;
  sessionId: string;
}

export interface Authentication {
  viewer: Viewer | null;
  authError: GraphQLError | null;
  /** When the presented access token expires. */
  expiresAt?: Date;
}

/** The viewer, or the reason there is none as an UNAUTHENTICATED error. */
export function requireViewer(auth: Pick<Authentication, 'viewer' | 'authError'>): Viewer {
  if (auth.viewer) return auth.viewer;
  throw auth.authError ?? unauthenticated('SIGN_IN_REQUIRED');
}

/** Checks a `Bearer <accessToken>` value: signature, expiry, and that its session is still live. */
export async function authenticate(services: Pick<Services, 'tokens' | 'sessions'>, authorization: string | null | undefined): Promise<Authentication> {
  if (!authorization) return { viewer: null, authError: null };
  const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
  if (!match?.[1]) return { viewer: null, authError: unauthenticated('TOKEN_INVALID', 'Authorization must be "Bearer <accessToken>".') };
  const claims = await services.tokens.verifyAccessToken(match[1]);
  if (claims === 'expired') return { viewer: null, authError: unauthenticated('TOKEN_EXPIRED', 'Access token expired: refresh it.') };
  if (!claims) return { viewer: null, authError: unauthenticated('TOKEN_INVALID', 'Access token is invalid.') };
  // Checking the session on every request makes logout take effect at once, on every instance.
  const sessionUserId = await services.sessions.liveSessionUser(claims.sessionId);
  if (sessionUserId !== claims.userId) {
    return { viewer: null, authError: unauthenticated('SESSION_ENDED', 'Session has ended. Sign in again.') };
  }
  return { viewer: { userId: claims.userId, sessionId: claims.sessionId }, authError: null, expiresAt: claims.expiresAt };
}
