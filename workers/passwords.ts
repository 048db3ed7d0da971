// argon2id runs here, in a worker thread, never on the event loop.
import { hashSync, verifySync, type Algorithm } from '@node-rs/argon2';

/** `Algorithm.Argon2id`; the enum is `const` in the typings, so its value is spelled out. */
const ARGON2ID = 2 as Algorithm;

export interface HashPasswordInput {
  password: string;
  /** argon2id memory cost in KiB (OWASP: at least 19456). */
  memoryKib: number;
  /** argon2id passes (OWASP: at least 2 at 19 MiB). */
  passes: number;
}

/** Returns a PHC string (`$argon2id$v=19$m=…,t=…,p=1$salt$hash`) that carries its own parameters. */
export function hashPassword({ password, memoryKib, passes }: HashPasswordInput): string {
  return hashSync(password, { algorithm: ARGON2ID, memoryCost: memoryKib, timeCost: passes, parallelism: 1 });
}

export interface VerifyPasswordInput {
  hash: string;
  password: string;
}

/** Constant-time comparison is done by argon2 itself; a malformed hash verifies as false. */
export function verifyPassword({ hash, password }: VerifyPasswordInput): boolean {
  try {
    return verifySync(hash, password);
  } catch {
    return false;
  }
}
