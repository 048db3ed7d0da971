// Stand-ins for the product's PasswordHasher, used only to put the worker pool's numbers in context.
// Never use them in the server.
import type { HashingSlot, PasswordHasher } from '../src/auth/passwords.ts';
import type { Config } from '../src/env.ts';
import { hashPassword, verifyPassword } from '../workers/passwords.ts';

/** argon2 right on the event loop: what the pool is there to avoid. */
export function createMainThreadHasher(params: Config['auth']['passwordHash']): PasswordHasher {
  let dummyHash: string | undefined;
  const hash = async (password: string) => hashPassword({ password, memoryKib: params.memoryKib, passes: params.passes });
  // Same shape as the pool version: unknown users still pay for one verification.
  const getDummyHash = () =>
    (dummyHash ??= hashPassword({ password: 'kocmoc-dummy-password-for-timing', memoryKib: params.memoryKib, passes: params.passes }));

  // `async` bodies run synchronously up to their first await, so each call blocks the loop for one hash.
  const slot: HashingSlot = {
    hash,
    verify: async (passwordHash, password) => verifyPassword({ hash: passwordHash, password }),
    verifyUnknownUser: async (password) => {
      verifyPassword({ hash: getDummyHash(), password });
      return false;
    },
    release: () => {},
  };
  return {
    // No queue to bound: the main thread just blocks.
    reserve: () => slot,
    hash,
    needsRehash: () => false,
    warmUp: async () => {
      verifyPassword({ hash: getDummyHash(), password: 'warm-up' });
    },
  };
}

/** Accepts every password without hashing: what a login costs apart from argon2 (HTTP, GraphQL, SQL, JWT). */
export function createFreeHasher(): PasswordHasher {
  const hash = async (password: string) => `free:${password}`;
  const slot: HashingSlot = { hash, verify: async () => true, verifyUnknownUser: async () => false, release: () => {} };
  return { reserve: () => slot, hash, needsRehash: () => false, warmUp: async () => {} };
}
