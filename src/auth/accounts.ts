// Registration and login: the two ways to get a first device session.
import { z } from 'zod';
import type { Services } from '../context.ts';
import { badUserInput, conflict, unauthenticated } from '../errors.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { displayNameSchema, emailSchema, usernameSchema } from '../users/profile.ts';
import { parseInput } from '../validation.ts';
import { PASSWORD_MAX_LENGTH, passwordProblem } from './passwords.ts';
import { openSession, type AuthPayload } from './sessions.ts';

type AccountServices = Pick<Services, 'prisma' | 'tokens' | 'passwords' | 'events' | 'sessions'>;
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
  passwords.assertCapacity();
  const problem = passwordProblem(data.password, data);
  if (problem) throw badUserInput('input.password', problem);
  // Checked before hashing so a taken name costs no CPU; the unique indexes still decide races.
  await assertAvailable(services, data.email, data.username);
  const passwordHash = await passwords.hash(data.password);
  try {
    const user = await prisma.user.create({
      data: { email: data.email, username: data.username, displayName: data.displayName ?? data.username, passwordHash },
    });
    return await openSession(services, user, device);
  } catch (error) {
    if (isUniqueViolation(error)) {
      await assertAvailable(services, data.email, data.username);
    }
    throw error;
  }
}

async function assertAvailable({ prisma }: AccountServices, email: string, username: string) {
  const taken = await prisma.user.findMany({
    where: { OR: [{ email }, { username }] },
    select: { email: true, username: true },
  });
  if (taken.some((u) => u.email === email)) throw conflict('input.email', 'An account with this email already exists.');
  if (taken.some((u) => u.username === username)) throw conflict('input.username', 'This username is taken.');
}

export interface LoginInput {
  /** Email or username. */
  login: string;
  password: string;
}

const INVALID_LOGIN = 'Invalid login or password.';

export async function login(services: AccountServices, input: LoginInput, device: Device): Promise<AuthPayload> {
  const { prisma, passwords } = services;
  const login = input.login.trim().toLowerCase();
  if (!login) throw badUserInput('input.login', 'Enter your email or username.');
  if (!input.password) throw badUserInput('input.password', 'Enter your password.');
  // Longer than any password we accept: refuse without spending a hash on it.
  if (input.password.length > PASSWORD_MAX_LENGTH) throw unauthenticated(INVALID_LOGIN);
  // Under overload, answer at once instead of queueing for a database connection first.
  passwords.assertCapacity();
  const user = await prisma.user.findUnique({ where: login.includes('@') ? { email: login } : { username: login } });
  // Unknown users cost one verification too, so timing does not tell which accounts exist.
  const valid = user ? await passwords.verify(user.passwordHash, input.password) : await passwords.verifyUnknownUser(input.password);
  if (!user || !valid) throw unauthenticated(INVALID_LOGIN);
  return openSession(services, user, device);
}
