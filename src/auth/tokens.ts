// Access tokens (short-lived HS256 JWTs, jose) and refresh tokens (opaque, stored hashed).
import { createHash, webcrypto } from 'node:crypto';
import { randomBytes } from '../random.ts';
import { jwtVerify, SignJWT } from 'jose';
import type { Config } from '../env.ts';

export interface AccessClaims {
  userId: string;
  sessionId: string;
}

export interface VerifiedAccessToken extends AccessClaims {
  expiresAt: Date;
}

export type TokenService = ReturnType<typeof createTokenService>;

export function createTokenService(auth: Config['auth']) {
  // A WebCrypto key imported once: jose signs with WebCrypto, and handing it raw bytes or a KeyObject
  // costs a conversion on every sign and verify (every authenticated request verifies).
  const keyReady = webcrypto.subtle.importKey('raw', Buffer.from(auth.jwtSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);

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

    /** Null for anything but a well-formed, unexpired HS256 token of ours (alg pinned: no `none`, no RS/HS confusion). */
    async verifyAccessToken(token: string): Promise<VerifiedAccessToken | null> {
      try {
        const { payload } = await jwtVerify(token, await keyReady, {
          algorithms: ['HS256'],
          issuer: auth.issuer,
          audience: auth.audience,
          requiredClaims: ['sub', 'exp', 'iat'],
        });
        if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') return null;
        return { userId: payload.sub, sessionId: payload.sid, expiresAt: new Date(payload.exp! * 1000) };
      } catch {
        return null;
      }
    },
  };
}

/** 256 random bits; only its SHA-256 is stored, so a database leak does not leak sessions. */
export function newRefreshToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
