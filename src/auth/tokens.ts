// Access tokens (short-lived HS256 JWTs, jose) and refresh tokens (`<sessionId>.<generation>.<mac>`).
import { createHash, createHmac, hkdfSync, timingSafeEqual, webcrypto } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { Config } from '../env.ts';

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface VerifiedAccessToken extends AccessClaims {
  expiresAt: Date;
}

/** What a refresh token that passed its check names. */
export type PresentedRefreshToken =
  | { kind: 'generation'; sessionId: string; generation: number }
  /** LEGACY: an opaque token from before generations, found by this hash in "RefreshToken". */
  | { kind: 'legacy'; tokenHash: string };

export type TokenService = ReturnType<typeof createTokenService>;

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// Up to 2^31 - 1, the generation column's range.
const GENERATION = /^[1-9]\d{0,9}$/;
const MAX_GENERATION = 2 ** 31 - 1;
const LEGACY_TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Verified access tokens remembered per process (~0.5 KB each with the token's text: ~5 MB at most).
 * One per session active within a token's lifetime; past that, the oldest are checked again.
 */
const VERIFIED_TOKENS_MAX = 10_000;

export function createTokenService(auth: Config['auth']) {
  // A WebCrypto key imported once: jose signs with WebCrypto, and handing it raw bytes or a KeyObject
  // costs a conversion on every sign and verify (every authenticated request verifies).
  const keyReady = webcrypto.subtle.importKey('raw', Buffer.from(auth.jwtSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  // A key of its own for refresh tokens, derived from JWT_SECRET with a distinct label: the database
  // holds no token material, so a leak of it neither uses nor makes refresh tokens.
  const refreshKey = Buffer.from(hkdfSync('sha256', auth.jwtSecret, '', 'kocmoc refresh tokens v1', 32));
  // Access tokens that verified, by their text (oldest dropped first). Only the signature and
  // claims are remembered: whether the session is still live is asked on every request
  // (authenticate.ts), so logout still takes effect at once.
  const verified = new Map<string, VerifiedAccessToken>();
  const refreshMac = (sessionId: string, generation: number) =>
    createHmac('sha256', refreshKey).update(`${sessionId}.${generation}`).digest('base64url');

  return {
    accessTokenTtlMs: auth.accessTokenTtlMs,
    refreshTokenTtlMs: auth.refreshTokenTtlMs,

    async issueAccessToken({ userId, sessionId }: AccessClaims, now = new Date()) {
      const expiresAt = new Date(now.getTime() + auth.accessTokenTtlMs);
      const token = await new SignJWT({ sid: sessionId })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(userId)
        .setIssuer(auth.issuer)
        .setAudience(auth.audience)
        .setIssuedAt(Math.floor(now.getTime() / 1000))
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(await keyReady);
      return { token, expiresAt };
    },

    /**
     * The claims of a well-formed, unexpired HS256 token of ours (alg pinned: no `none`, no RS/HS
     * confusion); 'expired' for one of ours past its expiry (jose checks the signature first); else null.
     */
    async verifyAccessToken(token: string): Promise<VerifiedAccessToken | 'expired' | null> {
      // A token whose signature and claims passed once passes again until it expires: only expiry
      // is checked again (bench/RESULTS.md "sendMessage: where a send's CPU goes": ~8 % of a send).
      const known = verified.get(token);
      if (known) {
        if (Date.now() < known.expiresAt.getTime()) return known;
        verified.delete(token);
        return 'expired';
      }
      try {
        const { payload } = await jwtVerify(token, await keyReady, {
          algorithms: ['HS256'],
          issuer: auth.issuer,
          audience: auth.audience,
          requiredClaims: ['sub', 'exp', 'iat'],
        });
        if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') return null;
        const claims = { userId: payload.sub, sessionId: payload.sid, expiresAt: new Date(payload.exp! * 1000) };
        if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value!);
        verified.set(token, claims);
        return claims;
      } catch (error) {
        return (error as { code?: unknown }).code === 'ERR_JWT_EXPIRED' ? 'expired' : null;
      }
    },

    /**
     * The refresh token of a session's `generation`. Deterministic, so any generation can be checked
     * later without storing it: a spent one that comes back is recognised as ours (reuse), not as junk.
     */
    issueRefreshToken(sessionId: string, generation: number): string {
      return `${sessionId}.${generation}.${refreshMac(sessionId, generation)}`;
    },

    /**
     * What a refresh token names if we issued it (MAC checked in constant time), else null. Whether
     * its generation is still the current one only the session row can say. A 43-character opaque
     * string may be a LEGACY token; only its hash lookup can say.
     */
    readRefreshToken(token: string): PresentedRefreshToken | null {
      if (LEGACY_TOKEN.test(token)) return { kind: 'legacy', tokenHash: hashRefreshToken(token) };
      const [sessionId = '', generationText = '', mac = '', ...rest] = token.split('.');
      if (rest.length > 0 || !SESSION_ID.test(sessionId) || !GENERATION.test(generationText)) return null;
      const generation = Number(generationText);
      if (generation > MAX_GENERATION) return null;
      // Compared as text: decoding base64url first would accept several spellings of one MAC.
      const given = Buffer.from(mac);
      const expected = Buffer.from(refreshMac(sessionId, generation));
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
      return { kind: 'generation', sessionId, generation };
    },
  };
}

/** LEGACY: how "RefreshToken" stores the opaque tokens issued before generations. */
export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
