// The search bench's data set, loaded in bulk with COPY: chats and memberships by SQL, then
// messages (sealed as sendMessage seals them) and their blind-index rows (as sendMessage indexes
// them), generated here in time order and streamed into PostgreSQL.
import { once } from 'node:events';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Writable } from 'node:stream';
import type { Config } from '../src/env.ts';
import type { ContentCipher } from '../src/crypto/content-cipher.ts';
import { uuidv7 } from '../src/ids.ts';
import { encodeContent, messageAad } from '../src/messages/content.ts';
import { indexTokens } from '../src/messages/search-index.ts';

export interface DataSet {
  chats: number;
  messages: number;
  /** Chats (the first ones) the searching user is a member of. */
  searcherChats: number;
  /** Pseudo-words; word of rank r (1-based) is used with probability ∝ 1/r (Zipf, s = 1). */
  vocabulary: string[];
  /** Messages containing each word (by rank - 1), over the whole set and in the searcher's chats. */
  documentFrequency: number[];
  searcherDocumentFrequency: number[];
  /** Seconds spent generating + copying, and building the GIN index afterwards. */
  loadSeconds: number;
  indexSeconds: number;
}

const VOCABULARY_SIZE = 5_000;
const BATCH = 1_000;
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** A small deterministic generator (mulberry32), so every run has the same data. */
function generator(seed: number) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeVocabulary(random: () => number): string[] {
  const words = new Set<string>();
  while (words.size < VOCABULARY_SIZE) {
    const length = 4 + Math.floor(random() * 6);
    words.add(Array.from({ length }, () => LETTERS[Math.floor(random() * LETTERS.length)]).join(''));
  }
  return [...words];
}

/** Zipf sampling by inverting the cumulative weights. */
function zipfSampler(size: number, random: () => number) {
  const cumulative: number[] = [];
  let sum = 0;
  for (let rank = 1; rank <= size; rank++) cumulative.push((sum += 1 / rank));
  return () => {
    const target = random() * sum;
    let low = 0;
    let high = size - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (cumulative[middle]! < target) low = middle + 1;
      else high = middle;
    }
    return low;
  };
}

/** A bytea in COPY's text format (`\\x…`, its backslash escaped for COPY). */
const byteaLiteral = (bytes: Uint8Array) => `\\\\x${Buffer.from(bytes).toString('hex')}`;
/** A bytea as a quoted element of an array literal in COPY's text format: the backslash escaped for the array, then for COPY. */
const byteaElement = (bytes: Uint8Array) => `"\\\\\\\\x${Buffer.from(bytes).toString('hex')}"`;

async function write(stream: Writable, chunk: string) {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

async function finish(stream: Writable) {
  const done = once(stream, 'finish');
  stream.end();
  await done;
}

export interface LoadOptions {
  databaseUrl: string;
  config: Config;
  cipher: ContentCipher;
  searcherId: string;
  /** Other users: each chat has two of them as members, who send its messages. */
  memberIds: string[];
  chats: number;
  messages: number;
  searcherChats: number;
  /** Replays the generator without writing (the data is there from an earlier run): the same words and counts. */
  dryRun?: boolean;
}

interface PlannedMessage {
  index: number;
  chat: number;
  ranks: number[];
}

/** The data set's words and messages in time order, the same on every run (a fixed seed). */
function plan(chats: number, messages: number) {
  const random = generator(16);
  const vocabulary = makeVocabulary(random);
  const sampleWord = zipfSampler(vocabulary.length, random);
  // Every chat gets messages/chats of them, interleaved in time.
  const order = Array.from({ length: messages }, (_, index) => index % chats);
  for (let index = order.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [order[index], order[other]] = [order[other]!, order[index]!];
  }
  function* planned(): Generator<PlannedMessage> {
    for (let index = 0; index < messages; index++) {
      const length = 4 + Math.floor(random() * 11);
      yield { index, chat: order[index]!, ranks: Array.from({ length }, () => sampleWord()) };
    }
  }
  return { vocabulary, planned };
}

function counter(vocabularySize: number, searcherChats: number) {
  const documentFrequency = new Array<number>(vocabularySize).fill(0);
  const searcherDocumentFrequency = new Array<number>(vocabularySize).fill(0);
  return {
    documentFrequency,
    searcherDocumentFrequency,
    count(message: PlannedMessage) {
      for (const rank of new Set(message.ranks)) {
        documentFrequency[rank]!++;
        if (message.chat < searcherChats) searcherDocumentFrequency[rank]!++;
      }
    },
  };
}

/** The statistics of a data set an earlier run loaded (BENCH_REUSE_DATABASE=1), without loading it again. */
export function replayDataSet(chats: number, messages: number, searcherChats: number): DataSet {
  const { vocabulary, planned } = plan(chats, messages);
  const counts = counter(vocabulary.length, searcherChats);
  for (const message of planned()) counts.count(message);
  return { chats, messages, searcherChats, vocabulary, ...counts, loadSeconds: 0, indexSeconds: 0 };
}

export async function loadDataSet(options: LoadOptions): Promise<DataSet> {
  const { config, cipher, chats, messages, searcherChats, memberIds } = options;
  const { vocabulary, planned } = plan(chats, messages);
  const counts = counter(vocabulary.length, searcherChats);
  const client = new pg.Client({ connectionString: options.databaseUrl });
  await client.connect();
  const started = performance.now();
  try {
    const chatIds = Array.from({ length: chats }, () => uuidv7());
    const membersOf = chatIds.map((_, index) => [memberIds[index % memberIds.length]!, memberIds[(index * 7 + 3) % memberIds.length]!]);
    await client.query(`INSERT INTO "Chat" ("id", "kind", "title") SELECT id, 'GROUP', 'bench' FROM unnest($1::text[]) id`, [chatIds]);
    const memberRows = chatIds.flatMap((chatId, index) =>
      [...new Set([...membersOf[index]!, ...(index < searcherChats ? [options.searcherId] : [])])].map((userId) => [chatId, userId]),
    );
    await client.query(`INSERT INTO "ChatMember" ("chatId", "userId") SELECT * FROM unnest($1::text[], $2::text[])`, [
      memberRows.map((row) => row[0]),
      memberRows.map((row) => row[1]),
    ]);
    // The GIN index is built once after the load: far faster than growing it row by row.
    await client.query('DROP INDEX "MessageSearch_tokens_idx"');
    const messageCopy = client.query(
      copyFrom('COPY "Message" ("id", "chatId", "seq", "senderId", "kind", "content", "contentKeyId", "createdAt") FROM STDIN'),
    );
    const searchClient = new pg.Client({ connectionString: options.databaseUrl });
    await searchClient.connect();
    const searchCopy = searchClient.query(copyFrom('COPY "MessageSearch" ("messageId", "chatId", "tokens", "keyId") FROM STDIN'));
    const seqOf = new Array<number>(chats).fill(0);
    // Spread over the past year, in time order.
    const firstAt = Date.now() - 365 * 86_400_000;
    const step = (365 * 86_400_000) / messages;
    const flush = async (batch: PlannedMessage[]) => {
      const rows = batch.map((m) => {
        const at = Math.floor(firstAt + m.index * step);
        return { id: uuidv7(at), chat: m.chat, at, seq: ++seqOf[m.chat]!, text: m.ranks.map((rank) => vocabulary[rank]).join(' ') };
      });
      const sealed = await cipher.seal(rows.map((m) => ({ aad: messageAad(m.id), plaintext: encodeContent({ text: m.text, location: null }) })));
      let messageRows = '';
      let searchRows = '';
      for (const [offset, m] of rows.entries()) {
        const chatId = chatIds[m.chat]!;
        const sender = membersOf[m.chat]![m.seq % 2]!;
        const seal = sealed[offset]!;
        messageRows += `${m.id}\t${chatId}\t${m.seq}\t${sender}\tTEXT\t${byteaLiteral(seal.ciphertext)}\t${seal.keyId}\t${new Date(m.at).toISOString()}\n`;
        const tokens = indexTokens(config.messageEncryption, chatId, m.text).map(byteaElement);
        searchRows += `${m.id}\t${chatId}\t{${tokens.join(',')}}\t${config.messageEncryption.currentKeyId}\n`;
      }
      await write(messageCopy, messageRows);
      await write(searchCopy, searchRows);
    };
    let batch: PlannedMessage[] = [];
    for (const message of planned()) {
      counts.count(message);
      batch.push(message);
      if (batch.length === BATCH) {
        await flush(batch);
        batch = [];
      }
    }
    await flush(batch);
    await finish(messageCopy);
    await finish(searchCopy);
    await searchClient.end();
    await client.query(`UPDATE "Chat" c SET "lastSeq" = v.seq FROM unnest($1::text[], $2::int[]) v(id, seq) WHERE c."id" = v.id`, [chatIds, seqOf]);
    const loaded = performance.now();
    await client.query('CREATE INDEX "MessageSearch_tokens_idx" ON "MessageSearch" USING GIN ("tokens" array_ops)');
    await client.query('VACUUM ANALYZE "Message"');
    await client.query('VACUUM ANALYZE "MessageSearch"');
    return {
      chats,
      messages,
      searcherChats,
      vocabulary,
      ...counts,
      loadSeconds: (loaded - started) / 1000,
      indexSeconds: (performance.now() - loaded) / 1000,
    };
  } finally {
    await client.end();
  }
}
