// What a message says, as stored: one sealed JSON document per message (and per earlier version),
// so reading a message is one decryption whatever its kind.
import type { ContentCipher } from '../crypto/content-cipher.ts';

export interface Location {
  latitude: number;
  longitude: number;
}

export interface MessageContent {
  text: string | null;
  location: Location | null;
}

export interface SealedContent {
  content: Uint8Array<ArrayBuffer>;
  contentKeyId: string;
}

interface StoredContent {
  t?: string;
  l?: [number, number];
}

export function encodeContent({ text, location }: MessageContent): Uint8Array {
  const stored: StoredContent = {};
  if (text != null) stored.t = text;
  if (location) stored.l = [location.latitude, location.longitude];
  return Buffer.from(JSON.stringify(stored));
}

export function decodeContent(bytes: Uint8Array): MessageContent {
  const stored = JSON.parse(Buffer.from(bytes).toString('utf8')) as StoredContent;
  return {
    text: stored.t ?? null,
    location: stored.l ? { latitude: stored.l[0], longitude: stored.l[1] } : null,
  };
}

/** AAD for a message row: its ciphertext cannot be moved to another message. */
export const messageAad = (messageId: string) => `message:${messageId}`;
/** AAD for an edit-history row. */
export const editAad = (editId: string) => `edit:${editId}`;
/** AAD for a scheduled message (src/messages/scheduled.ts). */
export const scheduledAad = (id: string) => `scheduled:${id}`;

export async function sealContent(cipher: ContentCipher, aad: string, content: MessageContent): Promise<SealedContent> {
  const [sealed] = await cipher.seal([{ aad, plaintext: encodeContent(content) }]);
  // Prisma's Bytes type wants an ArrayBuffer-backed array, which the cipher's output always is.
  return { content: sealed!.ciphertext as Uint8Array<ArrayBuffer>, contentKeyId: sealed!.keyId };
}
