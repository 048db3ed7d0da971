// Messages of end-to-end encrypted chats: the server relays one ciphertext envelope per recipient
// device and never sees the content. Position, order, idempotency, replies, read state and deletes
// work as for plaintext messages (messages.ts); an edit is a new set of envelopes.
import type { Viewer } from '../auth/authenticate.ts';
import { badUserInput, forbidden } from '../errors.ts';
import { isForeignKeyViolation } from '../db/errors.ts';
import type { Message, MessageKind } from '../generated/prisma/client.ts';
import { uuidv7 } from '../ids.ts';
import type { Services } from '../services.ts';
import { parseInput } from '../validation.ts';
import { addressingConflict, devicesToAddress, expectedDevices, parseEnvelopes, type EnvelopeInput, type ParsedEnvelopes } from './envelopes.ts';
import {
  announceSent,
  changedWhileSending,
  clientMessageIdSchema,
  earlierSend,
  findByClientId,
  outboxInsert,
  requireVisibleMessage,
  SENT_ROW,
  senderMayWrite,
  type SentRow,
  writeRefusal,
} from './messages.ts';

type EncryptedServices = Pick<Services, 'prisma' | 'events' | 'notifications' | 'config'>;

const MEDIA_KINDS: ReadonlySet<MessageKind> = new Set(['IMAGE', 'FILE', 'VOICE']);

export interface SendEncryptedMessageInput {
  chatId: string | number;
  kind: MessageKind;
  envelopes: readonly EnvelopeInput[];
  clientMessageId?: string | null;
  replyToId?: string | number | null;
  attachmentId?: string | number | null;
}

/** A media message carries an upload made with `encrypted: true` (its key travels in the envelopes); others none. */
function attachmentOf(input: SendEncryptedMessageInput): string | null {
  if (!MEDIA_KINDS.has(input.kind)) {
    if (input.attachmentId != null) throw badUserInput('input.attachmentId', `${input.kind} messages have no attachment.`);
    return null;
  }
  if (input.attachmentId == null) {
    throw badUserInput('input.attachmentId', `${input.kind} messages need an attachmentId (upload the encrypted file with uploadFile(encrypted: true) first).`);
  }
  return String(input.attachmentId);
}

/**
 * Sends an encrypted message from the viewer's device. Like sendMessage, the happy path is one
 * statement whose conditions are every rule, the envelopes addressing exactly the chat's current
 * devices included; only a refused send pays for the lookups that say why (CONFLICT with
 * missingDeviceIds / extraDeviceIds when the devices do not match).
 */
export async function sendEncryptedMessage(services: EncryptedServices, viewer: Viewer, input: SendEncryptedMessageInput): Promise<Message> {
  const { prisma } = services;
  const { userId: senderId, sessionId: senderDeviceId } = viewer;
  const chatId = String(input.chatId);
  const attachmentId = attachmentOf(input);
  const envelopes = parseEnvelopes(input.envelopes);
  const clientMessageId = input.clientMessageId == null ? null : parseInput(clientMessageIdSchema, input.clientMessageId, 'input.clientMessageId');
  const replyToId = input.replyToId == null ? null : String(input.replyToId);

  const id = uuidv7();
  let inserted: SentRow[];
  try {
    inserted = await prisma.$queryRaw<SentRow[]>`
      WITH expected AS (${devicesToAddress(chatId, senderDeviceId)}
      ), given AS (
        SELECT * FROM unnest(${envelopes.deviceIds}::text[], ${envelopes.types}::text[], ${envelopes.ciphertexts}::text[]) AS g("deviceId", "type", "ciphertext")
      ), next AS (
        UPDATE "Chat" c SET "lastSeq" = c."lastSeq" + 1, "lastMessageId" = ${id}, "lastActivityAt" = now()
        WHERE c."id" = ${chatId} AND c."encrypted" AND ${senderMayWrite(senderId, replyToId)}
          AND EXISTS (SELECT 1 FROM "Device" sd WHERE sd."id" = ${senderDeviceId} AND sd."userId" = ${senderId})
          AND (${attachmentId}::text IS NULL OR EXISTS (
            SELECT 1 FROM "Attachment" a WHERE a."id" = ${attachmentId} AND a."uploaderId" = ${senderId} AND a."encrypted"))
          AND NOT EXISTS (SELECT 1 FROM expected e WHERE e."id" NOT IN (SELECT "deviceId" FROM given))
          AND NOT EXISTS (SELECT 1 FROM given g WHERE g."deviceId" NOT IN (SELECT "id" FROM expected))
        RETURNING c."lastSeq", c."membersVersion"
      ), inserted AS (
        INSERT INTO "Message" ("id", "chatId", "seq", "senderId", "kind", "attachmentId", "replyToId", "clientMessageId", "createdAt")
        SELECT ${id}, ${chatId}, next."lastSeq", ${senderId}, ${input.kind}::"MessageKind", ${attachmentId}, ${replyToId}, ${clientMessageId}, now()
        FROM next
        RETURNING *
      ), envelopes AS (
        INSERT INTO "MessageEnvelope" ("messageId", "deviceId", "senderDeviceId", "type", "ciphertext", "createdAt")
        SELECT i."id", g."deviceId", ${senderDeviceId}, g."type"::"EnvelopeType", decode(g."ciphertext", 'base64'), now()
        FROM inserted i CROSS JOIN given g
      )
      ${outboxInsert(services.config)}
      ${SENT_ROW}`;
  } catch (error) {
    const earlier = await earlierSend(services, error, senderId, clientMessageId, chatId);
    if (earlier) return earlier;
    // A device (or the attachment) went away between the statement's reads and its writes.
    if (isForeignKeyViolation(error)) throw await whyEncryptedSendWasRefused(services, viewer, chatId, envelopes, replyToId, attachmentId);
    throw error;
  }
  const message = inserted[0];
  if (!message) {
    // A retry of a send that went through, refused now only because the chat's devices changed since.
    const earlier = clientMessageId ? await findByClientId(services, senderId, clientMessageId, chatId) : null;
    if (earlier) return earlier;
    throw await whyEncryptedSendWasRefused(services, viewer, chatId, envelopes, replyToId, attachmentId);
  }
  return announceSent(services, message);
}

/** The viewer's device exists: only a device with keys can be a sender anyone can decrypt. */
async function requireSenderDevice({ prisma }: Pick<Services, 'prisma'>, viewer: Viewer) {
  const device = await prisma.device.findUnique({ where: { id: viewer.sessionId }, select: { userId: true } });
  if (device?.userId !== viewer.userId) return forbidden('This session has no device keys: call uploadDeviceKeys first.');
  return null;
}

async function whyEncryptedSendWasRefused(
  services: EncryptedServices,
  viewer: Viewer,
  chatId: string,
  envelopes: ParsedEnvelopes,
  replyToId: string | null,
  attachmentId: string | null,
) {
  const { prisma } = services;
  const { problem, membership } = await writeRefusal(prisma, viewer.userId, chatId, replyToId);
  if (problem) return problem;
  if (!membership.chat.encrypted) return badUserInput('input.chatId', 'This chat is not end-to-end encrypted: send with sendMessage.');
  const noDevice = await requireSenderDevice(services, viewer);
  if (noDevice) return noDevice;
  if (attachmentId) {
    const attachment = await prisma.attachment.findUnique({ where: { id: attachmentId }, select: { uploaderId: true, encrypted: true } });
    if (attachment?.uploaderId !== viewer.userId) return badUserInput('input.attachmentId', 'Unknown attachment.');
    if (!attachment.encrypted) return badUserInput('input.attachmentId', 'In an encrypted chat, attachments are uploaded encrypted (uploadFile with encrypted: true).');
  }
  return addressingConflict(await expectedDevices(prisma, chatId, viewer.sessionId), envelopes.deviceIds) ?? changedWhileSending();
}

export interface EditEncryptedMessageInput {
  id: string | number;
  envelopes: readonly EnvelopeInput[];
}

/**
 * Edits one's own encrypted message: its envelopes are replaced by new ones (addressed as a send
 * is, to the chat's current devices), `editedAt` is set and members get EDITED. The server keeps no
 * history of earlier versions: it never had them in the clear.
 */
export async function editEncryptedMessage(services: EncryptedServices, viewer: Viewer, input: EditEncryptedMessageInput): Promise<Message> {
  const { prisma } = services;
  const { message, membership } = await requireVisibleMessage(services, viewer.userId, String(input.id));
  if (message.senderId !== viewer.userId) throw forbidden('Only the sender can edit a message.');
  if (!membership.chat.encrypted) throw badUserInput('input.id', 'This chat is not end-to-end encrypted: edit with editMessage.');
  if (message.deletedAt) throw badUserInput('input.id', 'Deleted messages cannot be edited.');
  const envelopes = parseEnvelopes(input.envelopes);
  const noDevice = await requireSenderDevice(services, viewer);
  if (noDevice) throw noDevice;
  const refused = addressingConflict(await expectedDevices(prisma, message.chatId, viewer.sessionId), envelopes.deviceIds);
  if (refused) throw refused;

  const editedAt = new Date();
  const edited = await replaceEnvelopes(services, viewer, message.id, envelopes, editedAt).catch(async (error: unknown) => {
    // A device went away since the check: say which, as a send would.
    if (!isForeignKeyViolation(error)) throw error;
    throw addressingConflict(await expectedDevices(prisma, message.chatId, viewer.sessionId), envelopes.deviceIds) ?? changedWhileSending();
  });
  if (!edited) throw badUserInput('input.id', 'Deleted messages cannot be edited.');
  await services.events.message(message.chatId, 'EDITED', message);
  return prisma.message.findUniqueOrThrow({ where: { id: message.id } });
}

/** Sets editedAt and swaps the envelopes in one transaction; false if the message was deleted meanwhile. */
function replaceEnvelopes({ prisma }: Pick<Services, 'prisma'>, viewer: Viewer, messageId: string, envelopes: ParsedEnvelopes, editedAt: Date) {
  return prisma.$transaction(async (tx) => {
    // Unless deleted meanwhile; of two edits at once, the later commit's envelopes stand.
    const updated = await tx.message.updateMany({ where: { id: messageId, deletedAt: null }, data: { editedAt } });
    if (updated.count === 0) return false;
    await tx.messageEnvelope.deleteMany({ where: { messageId } });
    await tx.$executeRaw`
      INSERT INTO "MessageEnvelope" ("messageId", "deviceId", "senderDeviceId", "type", "ciphertext", "createdAt")
      SELECT ${messageId}, g."deviceId", ${viewer.sessionId}, g."type"::"EnvelopeType", decode(g."ciphertext", 'base64'), now()
      FROM unnest(${envelopes.deviceIds}::text[], ${envelopes.types}::text[], ${envelopes.ciphertexts}::text[]) AS g("deviceId", "type", "ciphertext")`;
    return true;
  });
}
