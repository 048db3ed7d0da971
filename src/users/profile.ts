// Profile rules shared by registration and profile edits.
import unhomoglyph from 'unhomoglyph';
import { z } from 'zod';
import type { Services } from '../services.ts';
import type { Prisma, PrismaClient, UserStatus } from '../generated/prisma/client.ts';
import { isForeignKeyViolation } from '../db/errors.ts';
import { escapeLike } from '../db/like.ts';
import { badUserInput } from '../errors.ts';
import { parseInput } from '../validation.ts';
import { notBlocking } from './contacts.ts';

export const USERNAME_PATTERN = /^[a-z0-9_]{3,32}$/;
export const DISPLAY_NAME_MAX = 64;
export const BIO_MAX = 500;

/**
 * Emoji sequences (RGI) legitimately hold zero-width joiners, variation selectors and tag
 * characters; they are taken out before looking for hidden characters. (`v` flag: Node has it,
 * TypeScript's ES2023 target does not, hence the constructor.)
 */
const EMOJI_SEQUENCE = new RegExp('\\p{RGI_Emoji}', 'gv');
/**
 * What makes a name say something other than what it shows: control characters, format characters
 * (bidi overrides and isolates, zero-width spaces and joiners, the BOM), line and paragraph
 * separators, and the other default-ignorable ones (Hangul fillers, stray variation selectors).
 */
const HIDDEN_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;

/** Whether `name` holds a character that is invisible or changes how the text around it is shown. */
export const hasHiddenCharacters = (name: string) => HIDDEN_CHARACTER.test(name.replace(EMOJI_SEQUENCE, ''));

export const usernameSchema = z
  .string()
  .trim()
  .normalize('NFC')
  .refine((name) => !hasHiddenCharacters(name), 'Username cannot contain control, invisible or text-direction characters.')
  .toLowerCase()
  .regex(USERNAME_PATTERN, 'Username must be 3 to 32 characters: letters, digits or underscores.');

/**
 * The UTS #39 skeleton of a username (NFD, each character to its prototype in Unicode's
 * confusables data, NFD again), lower-cased because usernames are: two usernames with the same
 * skeleton look alike (`rn` and `m`, `l` and `1`, `bob` and `b0b`), so only one may exist.
 * ASCII maps only m -> rn, 0 -> o and 1 -> l: the migration that added the column relies on it.
 */
export function usernameSkeleton(username: string): string {
  return unhomoglyph(username.normalize('NFD')).normalize('NFD').toLowerCase();
}

export const emailSchema = z
  .string()
  .trim()
  .toLowerCase()
  .max(254, 'Email is too long.')
  .pipe(z.email('Enter a valid email address.'));

export const displayNameSchema = z
  .string()
  .trim()
  .normalize('NFC')
  .refine((name) => !hasHiddenCharacters(name), 'Display name cannot contain control, invisible or text-direction characters.')
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
  // Choosing OFFLINE is when others last saw them; choosing it again moves nothing.
  if (status === 'OFFLINE') await prisma.user.updateMany({ where: { id: userId, status: { not: 'OFFLINE' } }, data: { lastSeenAt: new Date() } });
  const user = await prisma.user.update({ where: { id: userId }, data: { status } });
  const online = (await presence.onlineUserIds([userId])).has(userId);
  if (online) await events.presence({ userId, online, lastSeenAt: user.lastSeenAt?.toISOString() ?? null });
  return user;
}

export const searchQuerySchema = z
  .string()
  .trim()
  .min(1, 'Search query cannot be empty.')
  .max(100, 'Search query must be at most 100 characters.');

/**
 * Users whose username starts with, or whose display name contains, the query (taken literally:
 * `%` and `_` are no wildcards); never one who blocked the viewer.
 */
export function userSearchFilter(query: string, viewerId: string) {
  const text = escapeLike(parseInput(searchQuerySchema, query, 'query'));
  return {
    OR: [
      { username: { startsWith: text.toLowerCase() } },
      { displayName: { contains: text, mode: 'insensitive' as const } },
    ],
    ...notBlocking(viewerId),
  } satisfies Prisma.UserWhereInput;
}
