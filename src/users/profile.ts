// Profile rules shared by registration and profile edits.
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { PrismaClient, UserStatus } from '../generated/prisma/client.ts';
import { isForeignKeyViolation } from '../db/errors.ts';
import { badUserInput } from '../errors.ts';
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
});

export interface ProfileInput {
  displayName?: string | null;
  bio?: string | null;
  /** One of the user's IMAGE uploads; null removes the picture. */
  avatarAttachmentId?: string | number | null;
  /** Deprecated: pictures are uploads. Null or '' still removes the picture; a URL is refused. */
  avatarUrl?: string | null;
}

export async function updateProfile(prisma: PrismaClient, userId: string, input: ProfileInput) {
  const { avatarAttachmentId, avatarUrl, ...fields } = input;
  if (fields.displayName === null) fields.displayName = undefined;
  const data = parseInput(profileSchema, fields);
  if (avatarUrl) {
    throw badUserInput('input.avatarUrl', 'Profile pictures are uploads: upload the image with uploadFile(kind: IMAGE) and set avatarAttachmentId.');
  }
  const avatar = avatarChange(avatarAttachmentId, avatarUrl);
  if (avatar) await requireOwnImage(prisma, userId, avatar);
  try {
    return await prisma.user.update({ where: { id: userId }, data: { ...data, avatarAttachmentId: avatar } });
  } catch (error) {
    // The upload was cleaned up (unused for a day) between the check and the update.
    if (isForeignKeyViolation(error)) throw unknownImage();
    throw error;
  }
}

/** The new picture's id, null to remove it, undefined to leave it as it is. */
function avatarChange(avatarAttachmentId: ProfileInput['avatarAttachmentId'], avatarUrl: ProfileInput['avatarUrl']): string | null | undefined {
  if (avatarAttachmentId != null) return String(avatarAttachmentId);
  if (avatarAttachmentId === null) return null;
  // The deprecated avatarUrl still removes the picture (null or ''); a URL was refused before.
  return avatarUrl === undefined ? undefined : null;
}

const unknownImage = () => badUserInput('input.avatarAttachmentId', 'Unknown image: upload it with uploadFile(kind: IMAGE) first.');

/** A profile picture is an image the user uploaded; anyone else's upload is as unknown as a missing one. */
async function requireOwnImage(prisma: PrismaClient, userId: string, attachmentId: string) {
  const attachment = await prisma.attachment.findUnique({ where: { id: attachmentId }, select: { uploaderId: true, kind: true } });
  if (!attachment || attachment.uploaderId !== userId) throw unknownImage();
  if (attachment.kind !== 'IMAGE') throw badUserInput('input.avatarAttachmentId', 'A profile picture must be uploaded as an IMAGE.');
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
