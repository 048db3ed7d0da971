// Password hashing through the worker pool, and the rules a new password must meet.
import type { Config } from '../env.ts';
import type { WorkerPool } from '../worker-pool.ts';

export const PASSWORD_MIN_LENGTH = 8;
/** Long enough for any passphrase, short enough that hashing cannot be abused. */
export const PASSWORD_MAX_LENGTH = 256;

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;

export function createPasswordHasher(pool: WorkerPool, params: Config['auth']['passwordHash']) {
  // Unknown-user logins verify against this, so they cost what a wrong password costs.
  let dummyHash: Promise<string> | undefined;
  const hash = (password: string) =>
    pool.run('hashPassword', { password, memoryKib: params.memoryKib, passes: params.passes }, { bounded: true });
  const getDummyHash = () => (dummyHash ??= hash('kocmoc-dummy-password-for-timing'));

  return {
    /** Refuses early (RATE_LIMITED) while hashing is over its queue bound, before any other work. */
    assertCapacity: () => pool.assertCapacity(),
    hash,
    verify: (passwordHash: string, password: string) =>
      pool.run('verifyPassword', { hash: passwordHash, password }, { bounded: true }),
    /** Spends one verification's worth of work and returns false. */
    verifyUnknownUser: async (password: string) => {
      await pool.run('verifyPassword', { hash: await getDummyHash(), password }, { bounded: true });
      return false as const;
    },
    /** Computes the dummy hash and teaches the pool what hashing and verifying cost, before the first login. */
    warmUp: async () => {
      await pool.run('verifyPassword', { hash: await getDummyHash(), password: 'warm-up' });
    },
  };
}

/** Returns what is wrong with a new password, or null. */
export function passwordProblem(password: string, identity: { email: string; username: string }): string | null {
  if (password.length < PASSWORD_MIN_LENGTH) return `Password must be at least ${PASSWORD_MIN_LENGTH} characters.`;
  if (password.length > PASSWORD_MAX_LENGTH) return `Password must be at most ${PASSWORD_MAX_LENGTH} characters.`;
  if (password.trim().length === 0) return 'Password cannot be only spaces.';
  if (new Set(password).size < 3) return 'Password is too repetitive; use at least 3 different characters.';
  const lower = password.toLowerCase();
  if (lower === identity.username || lower === identity.email || lower === identity.email.split('@')[0]) {
    return 'Password must not be your username or email.';
  }
  return null;
}
