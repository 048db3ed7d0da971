// The keyed blind index that makes encrypted-at-rest text searchable: words are normalised, and
// each word and word prefix becomes an HMAC-SHA256 token under a key derived from the message key,
// keyed to the chat too, so equal words in two chats give unrelated tokens. The database sees
// tokens only; what that leaks is in README "Search".
import { createHmac, hkdfSync } from 'node:crypto';
import { Prisma } from '../generated/prisma/client.ts';
import type { Config, Keyring } from '../env.ts';

/** Shortest prefix that is indexed (and so the shortest query word that matches longer words). */
export const MIN_PREFIX = 3;
/** Longer words are indexed by their prefixes up to this many characters; longer query words are cut to it. */
export const MAX_TERM = 24;
/** Bytes kept of each HMAC-SHA256: 128 bits, so distinct terms of a chat never collide in practice. */
const TOKEN_BYTES = 16;
const HKDF_LABEL = 'kocmoc search index v1';

/** A word of the text: its normalised form and where it stands in the original (UTF-16 offsets). */
export interface Word {
  term: string;
  start: number;
  end: number;
}

// Letters and digits, with their combining marks, so an accent stays inside its word.
const WORD = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;

/**
 * Unicode NFKC, then case folding (JavaScript has no full case fold: lower case, then ß and final
 * sigma as the fold has them), then diacritics stripped (decompose, drop the marks).
 */
export function normalise(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/ß/g, 'ss')
    .replace(/ς/g, 'σ')
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .normalize('NFC');
}

/** The words of a text in order, each normalised (one original word may give several, as NFKC splits "½"). */
export function wordsOf(text: string): Word[] {
  const words: Word[] = [];
  for (const match of text.matchAll(WORD)) {
    const start = match.index;
    const end = start + match[0].length;
    for (const part of normalise(match[0]).match(WORD) ?? []) words.push({ term: part, start, end });
  }
  return words;
}

/** What one word is indexed under: its prefixes of MIN_PREFIX to MAX_TERM characters, or itself when shorter. */
function termsOfWord(term: string): string[] {
  const chars = [...term];
  if (chars.length < MIN_PREFIX) return [term];
  const terms: string[] = [];
  for (let length = MIN_PREFIX; length <= Math.min(chars.length, MAX_TERM); length++) terms.push(chars.slice(0, length).join(''));
  return terms;
}

/** The term a query word is looked up by: matches every word it is a prefix of (from MIN_PREFIX characters). */
export function queryTerm(term: string): string {
  const chars = [...term];
  return chars.length > MAX_TERM ? chars.slice(0, MAX_TERM).join('') : term;
}

const derivedKeys = new WeakMap<Keyring, Map<string, Buffer>>();

/** The index key of each message key (HKDF, a label of its own), by the message key's id. */
function indexKeys(keyring: Keyring): Map<string, Buffer> {
  let keys = derivedKeys.get(keyring);
  if (!keys) {
    keys = new Map(Object.entries(keyring.keys).map(([id, key]) => [id, Buffer.from(hkdfSync('sha256', key, '', HKDF_LABEL, 32))]));
    derivedKeys.set(keyring, keys);
  }
  return keys;
}

function token(key: Buffer, chatId: string, term: string): Buffer {
  return createHmac('sha256', key).update(chatId).update('\0').update(term).digest().subarray(0, TOKEN_BYTES);
}

/** A message's entry: its tokens and the id of the message key their index key is derived from. */
export interface IndexEntry {
  keyId: string;
  tokens: Buffer[];
}

/** The tokens a text in a chat is indexed under, with the current key; none for no text. */
export function indexTokens(keyring: Keyring, chatId: string, text: string | null): Buffer[] {
  if (!text) return [];
  const key = indexKeys(keyring).get(keyring.currentKeyId)!;
  const terms = new Set(wordsOf(text).flatMap((word) => termsOfWord(word.term)));
  return [...terms].map((term) => token(key, chatId, term));
}

/** What sendMessage and editMessage index: nothing while SEARCH_INDEX_ENABLED is off (as the bench compares). */
export const tokensToIndex = (config: Pick<Config, 'messageEncryption' | 'search'>, chatId: string, text: string | null): IndexEntry => ({
  keyId: config.messageEncryption.currentKeyId,
  tokens: config.search.indexing ? indexTokens(config.messageEncryption, chatId, text) : [],
});

/**
 * For each query term, its tokens in every chat under every key of the keyring: after a key
 * rotation, messages indexed under the old key are still found while it is in the keyring (it has
 * to be, for them to be read).
 */
export function queryTokens(keyring: Keyring, chatIds: string[], terms: string[]): Buffer[][] {
  const keys = [...indexKeys(keyring).values()];
  return terms.map((term) => keys.flatMap((key) => chatIds.map((chatId) => token(key, chatId, queryTerm(term)))));
}

/**
 * The same tokens laid out flat as [chat][key][term] (chat by chat, in `chatIds` order), so SQL can
 * take one chat's slice under one key; with the number of keys.
 */
export function chatTokenSlices(keyring: Keyring, chatIds: string[], terms: string[]): { flat: Buffer[]; keys: number } {
  const keys = [...indexKeys(keyring).values()];
  const flat = chatIds.flatMap((chatId) => keys.flatMap((key) => terms.map((term) => token(key, chatId, queryTerm(term)))));
  return { flat, keys: keys.length };
}

/** Tokens as one SQL `bytea[]` parameter (the driver takes arrays of plain Uint8Arrays). */
export const tokenArray = (tokens: Buffer[]) => Prisma.sql`${tokens.map((t) => new Uint8Array(t))}::bytea[]`;

/**
 * A CTE after `inserted` (sendMessage's statement) that indexes the new message; nothing without
 * tokens. Committed with the message, so a sent message is never missing from the index.
 */
export const searchIndexInsert = ({ keyId, tokens }: IndexEntry) =>
  tokens.length === 0
    ? Prisma.empty
    : Prisma.sql`, indexed AS (INSERT INTO "MessageSearch" ("messageId", "chatId", "tokens", "keyId") SELECT "id", "chatId", ${tokenArray(tokens)}, ${keyId} FROM inserted)`;

type IndexClient = Pick<Prisma.TransactionClient, '$executeRaw'>;

/** Replaces a message's entry with the tokens of its new text (an edit): the old text's words leave the index. */
export async function reindexMessage(client: IndexClient, messageId: string, chatId: string, { keyId, tokens }: IndexEntry) {
  if (tokens.length === 0) {
    await client.$executeRaw`DELETE FROM "MessageSearch" WHERE "messageId" = ${messageId}`;
    return;
  }
  await client.$executeRaw`
    INSERT INTO "MessageSearch" ("messageId", "chatId", "tokens", "keyId") VALUES (${messageId}, ${chatId}, ${tokenArray(tokens)}, ${keyId})
    ON CONFLICT ("messageId") DO UPDATE SET "tokens" = excluded."tokens", "keyId" = excluded."keyId"`;
}
