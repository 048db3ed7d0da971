import { randomBytes } from './random.ts';

/**
 * A UUIDv7 (RFC 9562): time-ordered, so new rows land at the end of the primary-key index.
 * Made here rather than by the database when the id is needed before the insert (e.g. as AAD).
 */
export function uuidv7(now = Date.now()): string {
  const bytes = randomBytes(16);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
