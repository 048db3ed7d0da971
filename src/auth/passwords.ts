// Password hashing through the worker pool, and the rules a new password must meet.
import type { Config } from '../env.ts';
import type { WorkerPool } from '../cpu/pool.ts';

export const PASSWORD_MIN_LENGTH = 8;
/** Long enough for any passphrase, short enough that hashing cannot be abused. */
export const PASSWORD_MAX_LENGTH = 256;

export type PasswordHasher = ReturnType<typeof createPasswordHasher>;

/** One hashing operation's place in the worker pool's bounded queue, taken before its input is known. */
export interface HashingSlot {
  hash(password: string): Promise<string>;
  verify(passwordHash: string, password: string): Promise<boolean>;
  /** Spends one verification's worth of work and returns false. */
  verifyUnknownUser(password: string): Promise<false>;
  /** Gives the place back when the request ends before hashing (safe to call after hashing). */
  release(): void;
}

export function createPasswordHasher(pool: WorkerPool, params: Config['auth']['passwordHash']) {
  // Unknown-user logins verify against this, so they cost what a wrong password costs.
  let dummyHash: Promise<string> | undefined;
  const hashInput = (password: string) => ({ password, memoryKib: params.memoryKib, passes: params.passes });
  const getDummyHash = () => (dummyHash ??= pool.run('hashPassword', hashInput('kocmoc-dummy-password-for-timing')));

  return {
    /**
     * Takes a place for one hash or verification, or throws WorkerPoolBusyError (answered
     * RATE_LIMITED) at once while hashing is
     * over its queue bound. Logins and registrations call it first, so under overload they are
     * refused before any database work and the queue never grows past its bound.
     */
    reserve(): HashingSlot {
      // Hashing and verifying cost the same (same parameters): the verification estimate serves both.
      const slot = pool.reserve('verifyPassword');
      return {
        hash: (password) => slot.run('hashPassword', hashInput(password)),
        verify: (passwordHash, password) => slot.run('verifyPassword', { hash: passwordHash, password }),
        verifyUnknownUser: async (password) => {
          await slot.run('verifyPassword', { hash: await getDummyHash(), password });
          return false;
        },
        release: slot.release,
      };
    },
    /** Hashes now if the queue has room (WorkerPoolBusyError otherwise). */
    hash: (password: string) => pool.run('hashPassword', hashInput(password), { bounded: true }),
    /** True when a stored hash was made with other parameters than today's (it is then re-hashed at login). */
    needsRehash: (passwordHash: string) => {
      const stored = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=1\$/.exec(passwordHash);
      return !stored || Number(stored[1]) !== params.memoryKib || Number(stored[2]) !== params.passes;
    },
    /** Computes the dummy hash and teaches the pool what hashing and verifying cost, before the first login. */
    warmUp: async () => {
      await pool.run('verifyPassword', { hash: await getDummyHash(), password: 'warm-up' });
    },
  };
}

/** Returns what is wrong with a new password, or null. */
export function passwordProblem(password: string, identity: { email: string | null; username: string }): string | null {
  if (password.length < PASSWORD_MIN_LENGTH) return `Password must be at least ${PASSWORD_MIN_LENGTH} characters.`;
  if (password.length > PASSWORD_MAX_LENGTH) return `Password must be at most ${PASSWORD_MAX_LENGTH} characters.`;
  if (password.trim().length === 0) return 'Password cannot be only spaces.';
  if (new Set(password).size < 3) return 'Password is too repetitive; use at least 3 different characters.';
  const lower = password.toLowerCase();
  const email = identity.email ?? '';
  if (lower === identity.username || lower === email || lower === email.split('@')[0]) {
    return 'Password must not be your username or email.';
  }
  return null;
}
