// Public keys as clients send them: standard base64 of the raw bytes. The server only checks their
// shape and the signed pre-key's signature; it never holds a private key.
import { createPublicKey, verify } from 'node:crypto';
import { badUserInput } from '../errors.ts';

/** Ed25519 and X25519 public keys are 32 bytes; Ed25519 signatures 64. */
export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

/** Standard base64 (RFC 4648 §4) with its padding: what `btoa` and `Buffer#toString('base64')` write. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The bytes of a base64 string, or BAD_USER_INPUT on `field` (bad alphabet or padding, or not `bytes` long when given). */
export function decodeBase64(value: string, field: string, what: string, bytes?: number): Buffer {
  if (!BASE64.test(value)) throw badUserInput(field, `${what} must be standard base64.`);
  const decoded = Buffer.from(value, 'base64');
  if (bytes !== undefined && decoded.length !== bytes) {
    throw badUserInput(field, `${what} must be ${bytes} bytes (got ${decoded.length}).`);
  }
  return decoded;
}

export const encodeBase64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/**
 * Whether `signature` is `identityKey`'s Ed25519 signature of `message`. A key that is not an
 * Ed25519 point at all fails like a bad signature: either way the upload cannot be trusted.
 */
export function verifyEd25519(identityKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(identityKey).toString('base64url') }, format: 'jwk' });
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
