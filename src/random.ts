// Cryptographically secure random bytes, drawn from a buffer refilled 4 KiB at a time.
// Each crypto.randomBytes call is a getrandom(2) system call, which is slow on virtual machines;
// a login draws three times. Node buffers randomUUID() the same way.
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let offset = POOL_BYTES;

/** `size` fresh random bytes in a new Buffer (never shared, never handed out twice). */
export function randomBytes(size: number): Buffer {
  if (size > POOL_BYTES / 4) return randomFillSync(Buffer.allocUnsafe(size));
  if (offset + size > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const bytes = Buffer.from(pool.subarray(offset, offset + size));
  // Zeroed once handed out, so the same bytes never reach two callers even through a bug here.
  pool.fill(0, offset, offset + size);
  offset += size;
  return bytes;
}
