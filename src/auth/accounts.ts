// Registration and login: the two ways to get a first device session.
import { z } from 'zod';
import type { Services } from '../services.ts';
import { WorkerPoolBusyError } from '../cpu/pool.ts';
import { badUserInput, conflict, unauthenticated } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { displayNameSchema, emailSchema, usernameSchema, usernameSkeleton } from '../users/profile.ts';
import { parseInput } from '../validation.ts';
import { PASSWORD_MAX_LENGTH, passwordProblem } from './passwords.ts';
import { openSession, type AuthPayload } from './sessions.ts';
import type { User } from '../generated/prisma/client.ts';

type AccountServices = Pick<Services, 'prisma' | 'tokens' | 'passwords' | 'events' | 'sessions' | 'logger'>;
interface Device {
  userAgent: string | null;
}

const registerSchema = z.object({
  email: emailSchema,
  username: usernameSchema,
  password: z.string(),
  displayName: displayNameSchema.optional(),
});

export interface RegisterInput {
  email: string;
  username: string;
  password: string;
  displayName?: string | null;
}

export async function register(services: AccountServices, input: RegisterInput, device: Device): Promise<AuthPayload> {
  const { prisma, passwords } = services;
  const data = parseInput(registerSchema, { ...input, displayName: input.displayName ?? undefined });
  const problem = passwordProblem(data.password, data);
  if (problem) throw badUserInput('input.password', problem);
  // Under overload, answer at once instead of queueing for a database connection first.
  const hashing = passwords.reserve();
  const skeleton = usernameSkeleton(data.username);
  let passwordHash: string;
  try {
    // Checked before hashing so a taken name costs no CPU; the unique indexes still decide races.
    await assertAvailable(services, data.email, data.username, skeleton);
    passwordHash = await hashing.hash(data.password);
  } finally {
    hashing.release();
  }
  try {
    const user = await prisma.user.create({
      data: { email: data.email, username: data.username, usernameSkeleton: skeleton, displayName: data.displayName ?? data.username, passwordHash },
    });
    return await openSession(services, user, device);
  } catch (error) {
    if (isUniqueViolation(error)) {
      await assertAvailable(services, data.email, data.username, skeleton);
    }
    throw error;
  }
}

async function assertAvailable({ prisma }: AccountServices, email: string, username: string, skeleton: string) {
  const taken = await prisma.user.findMany({
    where: { OR: [{ email }, { username }, { usernameSkeleton: skeleton }] },
    select: { email: true, username: true },
  });
  if (taken.some((u) => u.email === email)) throw conflict('input.email', 'An account with this email already exists.');
  if (taken.some((u) => u.username === username)) throw conflict('input.username', 'This username is taken.');
  // Not the same name, but one that looks the same (`rn` for `m`, `0` for `o`): someone could pass for them.
  if (taken.length > 0) throw conflict('input.username', 'This username looks too much like one that is taken.');
}

export interface LoginInput {
  /** Email or username. */
  login: string;
  password: string;
}

const INVALID_LOGIN = 'Invalid login or password.';

export async function login(services: AccountServices, input: LoginInput, device: Device): Promise<AuthPayload> {
  const { prisma, passwords } = services;
  const login = input.login.trim().normalize('NFC').toLowerCase();
  if (!login) throw badUserInput('input.login', 'Enter your email or username.');
  if (!input.password) throw badUserInput('input.password', 'Enter your password.');
  // Longer than any password we accept: refuse without spending a hash on it.
  if (input.password.length > PASSWORD_MAX_LENGTH) throw unauthenticated(INVALID_LOGIN);
  // Under overload, answer at once instead of queueing for a database connection first.
  const hashing = passwords.reserve();
  let user: User | null;
  let valid: boolean;
  try {
    user = await prisma.user.findUnique({ where: login.includes('@') ? { email: login } : { username: login } });
    // Unknown users cost one verification too, so timing does not tell which accounts exist.
    valid = user ? await hashing.verify(user.passwordHash, input.password) : await hashing.verifyUnknownUser(input.password);
  } finally {
    hashing.release();
  }
  if (!user || !valid) throw unauthenticated(INVALID_LOGIN);
  // After the response's work, not before it: the user waits for one hash, not two.
  if (passwords.needsRehash(user.passwordHash)) void upgradePasswordHash(services, user, input.password);
  return openSession(services, user, device);
}

/**
 * Re-hashes a password whose stored hash uses other argon2id parameters than the configured ones
 * (e.g. after PASSWORD_HASH_* changed), so every account moves to the new cost as its owner signs in.
 * Skipped while hashing is over its bound; the next login tries again. Never throws.
 */
async function upgradePasswordHash({ prisma, passwords, logger }: AccountServices, user: { id: string; passwordHash: string }, password: string) {
  try {
    const passwordHash = await passwords.hash(password);
    // Only if the hash is still the one that was verified: a concurrent change wins.
    await prisma.user.updateMany({ where: { id: user.id, passwordHash: user.passwordHash }, data: { passwordHash } });
  } catch (error) {
    if (!(error instanceof WorkerPoolBusyError)) logger.warn({ err: error, userId: user.id }, 'password hash upgrade failed');
  }
}
