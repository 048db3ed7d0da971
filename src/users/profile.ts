// Profile rules shared by registration and profile edits.
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { PrismaClient, UserStatus } from '../generated/prisma/client.ts';
import { parseInput } from '../validation.ts';

export const USERNAME_PATTERN = /^[a-z0-9_]{3,32}$/;
export const DISPLAY_NAME_MAX = 64;
export const BIO_MAX = 500;

export const usernameSchema = z
  .string()
  .trim()
  .toLowerCase()
  .regex(USERNAME_PATTERN, 'Username must be 3 to 32 characters: letters, digits or underscores.');

export const emailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, 'Email is too long.')
  .pipe(z.email('Enter a valid email address.'));

export const displayNameSchema = z
  .string()
  .trim()
  .min(1, 'Display name cannot be empty.')
  .max(DISPLAY_NAME_MAX, `Display name must be at most ${DISPLAY_NAME_MAX} characters.`);

const profileSchema = z.object({
  displayName: displayNameSchema.optional(),
  // null clears the field; an empty string does too.
  bio: z
    .string()
    .trim()
    .max(BIO_MAX, `Bio must be at most ${BIO_MAX} characters.`)
    .transform((v) => v || null)
    .nullish(),
  avatarUrl: z
    .string()
    .trim()
    .max(2_048, 'Avatar URL is too long.')
    .pipe(z.url({ protocol: /^https?$/, error: 'Avatar URL must be an http(s) URL.' }))
    .nullish()
    .or(z.literal('').transform(() => null)),
});

export interface ProfileInput {
  displayName?: string | null;
  bio?: string | null;
  avatarUrl?: string | null;
}

export async function updateProfile(prisma: PrismaClient, userId: string, input: ProfileInput) {
  if (input.displayName === null) input = { ...input, displayName: undefined };
  const data = parseInput(profileSchema, input);
  return prisma.user.update({ where: { id: userId }, data });
}

/**
 * Stores the status the user chose. Others see it while the user is connected, so a connected
 * user's followers are told at once.
 */
export async function setStatus({ prisma, presence, events }: Pick<Services, 'prisma' | 'presence' | 'events'>, userId: string, status: UserStatus) {
  const user = await prisma.user.update({
    where: { id: userId },
    data: { status, ...(status === 'OFFLINE' ? { lastSeenAt: new Date() } : {}) },
  });
  const online = (await presence.onlineUserIds([userId])).has(userId);
  if (online) await events.presence({ userId, online, lastSeenAt: user.lastSeenAt?.toISOString() ?? null });
  return user;
}

export const searchQuerySchema = z
  .string()
  .trim()
  .min(1, 'Search query cannot be empty.')
  .max(100, 'Search query must be at most 100 characters.');

/** Users whose username starts with, or whose display name contains, the query. */
export function userSearchFilter(query: string) {
  const text = parseInput(searchQuerySchema, query, 'query');
  return {
    OR: [
      { username: { startsWith: text.toLowerCase() } },
      { displayName: { contains: text, mode: 'insensitive' as const } },
    ],
  };
}
