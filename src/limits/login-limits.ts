// Password guessing: failed logins are counted per account and address (RATE_LIMIT_LOGIN_FAILURES,
// 10 in 15 minutes), and once that is reached the address is locked out of that account for
// LOGIN_LOCKOUT, twice as long at each further lockout within a day, up to LOGIN_LOCKOUT_MAX. The
// account's owner signing in from elsewhere is not locked out; a looser account-wide count
// (RATE_LIMIT_LOGIN_ACCOUNT_FAILURES) stops guessing spread over many addresses. A successful login
// clears its account + address count. Anything that checks a password (login, changePassword)
// calls checkLoginAllowed before hashing and records the outcome after.
import { RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Config } from '../env.ts';
import { createLimiter, tooMany, type LimiterStore } from './rate-limits.ts';

const DAY_MS = 86_400_000;
const LOCKED = 'Too many failed sign-ins for this account';

/** Who is guessing: the account (a user id, or the login name when no such user exists) and the client address. */
export interface LoginAttempt {
  account: string;
  address: string;
}

export interface LoginLimiter {
  /** Throws RATE_LIMITED (with retryAfterSeconds) while this account is locked for this address, or for all. */
  checkLoginAllowed(attempt: LoginAttempt): Promise<void>;
  /** Counts a wrong password; locks the account for the address once RATE_LIMIT_LOGIN_FAILURES is reached. */
  recordLoginFailure(attempt: LoginAttempt): Promise<void>;
  /** Clears the account + address count. */
  recordLoginSuccess(attempt: LoginAttempt): Promise<void>;
}

const rejectedOrUsed = (outcome: unknown) => {
  if (outcome instanceof RateLimiterRes) return outcome;
  throw outcome;
};

export function createLoginLimiter(config: Pick<Config, 'limits'>, store: LimiterStore): LoginLimiter {
  const { failures, accountFailures, lockoutMs, lockoutMaxMs } = config.limits.login;
  if (!config.limits.rateLimitsEnabled) {
    return { checkLoginAllowed: async () => {}, recordLoginFailure: async () => {}, recordLoginSuccess: async () => {} };
  }
  const byPair = createLimiter(store, 'login:pair', failures.points, failures.durationMs);
  const byAccount = createLimiter(store, 'login:account', accountFailures.points, accountFailures.durationMs);
  // Lockouts of a pair in the last day: each doubles the next one.
  const lockouts = createLimiter(store, 'login:lockouts', Number.MAX_SAFE_INTEGER, DAY_MS);
  const pairKey = ({ account, address }: LoginAttempt) => `${account}|${address}`;

  const refuseWhenSpent = (limiter: RateLimiterAbstract, res: RateLimiterRes | null) => {
    if (res && res.consumedPoints >= limiter.points) throw tooMany(LOCKED, res.msBeforeNext);
  };

  return {
    async checkLoginAllowed(attempt) {
      const [pair, account] = await Promise.all([byPair.get(pairKey(attempt)), byAccount.get(attempt.account)]);
      refuseWhenSpent(byPair, pair);
      refuseWhenSpent(byAccount, account);
    },
    async recordLoginFailure(attempt) {
      const key = pairKey(attempt);
      const [pair] = await Promise.all([
        byPair.consume(key).catch(rejectedOrUsed),
        byAccount.consume(attempt.account).catch(rejectedOrUsed),
      ]);
      if (pair.consumedPoints !== failures.points) return;
      const { consumedPoints: lockoutCount } = await lockouts.consume(key);
      const lockMs = Math.min(lockoutMaxMs, lockoutMs * 2 ** Math.min(lockoutCount - 1, 30));
      await byPair.block(key, Math.max(1, Math.ceil(lockMs / 1_000)));
    },
    async recordLoginSuccess(attempt) {
      await byPair.delete(pairKey(attempt));
    },
  };
}
