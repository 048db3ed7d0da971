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
import type { LoginAttempt } from '../limits/login-limits.ts';

type AccountServices = Pick<Services, 'prisma' | 'tokens' | 'passwords' | 'events' | 'sessions' | 'logger' | 'rateLimits' | 'loginLimits'>;
interface Device {
  userAgent: string | null;
  /** The client's address, which the per-address limits count. */
  address: string;
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
  await services.rateLimits.consume('authAttempts', device.address);
  await services.rateLimits.consume('register', device.address);
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

/** Who tries a password: the client's address, and what to count an attempt on an unknown account against. */
export interface PasswordAttempt {
  address: string;
  /** The name tried when no account matches (login). Default `unknown`. */
  unknownAccount?: string;
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
  await services.rateLimits.consume('authAttempts', device.address);
  // Keyed on the user when there is one, so its email and its username share one count.
  const user = await checkPassword(
    services,
    () => prisma.user.findUnique({ where: login.includes('@') ? { email: login } : { username: login } }),
    input.password,
    { address: device.address, unknownAccount: `login:${login}` },
  );
  if (!user) throw unauthenticated('WRONG_CREDENTIALS', INVALID_LOGIN);
  // After the response's work, not before it: the user waits for one hash, not two.
  if (passwords.needsRehash(user.passwordHash)) void upgradePasswordHash(services, user, input.password);
  return openSession(services, user, device);
}

/**
 * The one place a password is checked against an account: login, changePassword and deleteAccount
 * all come here, so whatever limits password guessing counts every attempt. The hashing place is
 * taken before `findUser` runs, so under overload the request is refused before any database work.
 * An unknown account costs one verification too, so timing does not tell which accounts exist.
 * Returns the user when the password is theirs, else null.
 */
export async function checkPassword(
  { passwords, loginLimits }: Pick<Services, 'passwords' | 'loginLimits'>,
  findUser: () => Promise<User | null>,
  password: string,
  who: PasswordAttempt,
): Promise<(User & { passwordHash: string }) | null> {
  // Longer than any password we accept: refuse without spending a hash on it.
  if (password.length > PASSWORD_MAX_LENGTH) return null;
  const hashing = passwords.reserve();
  let user: User | null;
  let attempt: LoginAttempt;
  let valid: boolean;
  try {
    user = await findUser();
    attempt = { account: user?.id ?? who.unknownAccount ?? 'unknown', address: who.address };
    await loginLimits.checkLoginAllowed(attempt);
    // A deleted account has no password any more: it answers as an unknown one.
    valid = user?.passwordHash ? await hashing.verify(user.passwordHash, password) : await hashing.verifyUnknownUser(password);
  } finally {
    hashing.release();
  }
  if (!valid || !user?.passwordHash) {
    await loginLimits.recordLoginFailure(attempt);
    return null;
  }
  await loginLimits.recordLoginSuccess(attempt);
  return { ...user, passwordHash: user.passwordHash };
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
