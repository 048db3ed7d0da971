// searchMessages: candidates from the blind index (src/messages/search-index.ts) in the chats the
// viewer is a member of now, newest first; each one decrypted and checked for the phrase before it
// is returned, since tokens only say that each word (or prefix) occurs somewhere in the message.
import { Prisma, type Message } from '../generated/prisma/client.ts';
import type { Services } from '../services.ts';
import { badUserInput, notFound } from '../errors.ts';
import { CHAT_NOT_FOUND } from '../chats/membership.ts';
import { decodeContent, messageAad } from './content.ts';
import type { Keyring } from '../env.ts';
import { chatTokenSlices, MIN_PREFIX, queryTokens, tokenArray, wordsOf, type Word } from './search-index.ts';
import { queryKeyring } from './search-reindex.ts';

type SearchServices = Pick<Services, 'prisma' | 'cipher' | 'config'>;

export const SEARCH_QUERY_MAX_LENGTH = 200;
const SEARCH_QUERY_MAX_WORDS = 10;
/** Characters of context kept on each side of the match in a highlight. */
const SNIPPET_CONTEXT = 60;

/** Where a match is in the highlight's text, in UTF-16 code units (JavaScript string indices). */
export interface HighlightRange {
  start: number;
  length: number;
}

export interface SearchHighlight {
  /** The message text, or a window of it around the first match (with "…" where it was cut). */
  snippet: string;
  ranges: HighlightRange[];
}

export interface SearchHit {
  message: Message;
  highlight: SearchHighlight;
  cursor: string;
}

export interface SearchPage {
  hits: SearchHit[];
  hasNextPage: boolean;
}

export interface SearchArgs {
  query: string;
  chatId?: string | null;
  first: number;
  after?: string | null;
}

const encodeCursor = (messageId: string) => Buffer.from(`search:${messageId}`).toString('base64url');

function decodeCursor(cursor: string): string {
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!decoded.startsWith('search:') || decoded.length > 100) throw badUserInput('after', 'The cursor is invalid.');
  return decoded.slice('search:'.length);
}

/** The query's words, normalised as the index's are. */
function queryWords(query: string): string[] {
  if ([...query].length > SEARCH_QUERY_MAX_LENGTH) throw badUserInput('query', `The query must be at most ${SEARCH_QUERY_MAX_LENGTH} characters.`);
  const terms = wordsOf(query).map((word) => word.term);
  if (terms.length === 0) throw badUserInput('query', 'The query needs at least one letter or digit.');
  if (terms.length > SEARCH_QUERY_MAX_WORDS) throw badUserInput('query', `The query may have at most ${SEARCH_QUERY_MAX_WORDS} words.`);
  return terms;
}

/**
 * Where the phrase occurs in the text's words: the query's words in a row, each equal to the
 * text's word, except the last, which may be its prefix (from MIN_PREFIX characters: "hel" finds
 * "hello"). Returns the index of each occurrence's first word.
 */
export function phraseMatches(words: Word[], terms: string[]): number[] {
  const last = terms.length - 1;
  const matches: number[] = [];
  for (let i = 0; i + last < words.length; i++) {
    const fits = terms.every((term, k) => {
      const word = words[i + k]!.term;
      return word === term || (k === last && [...term].length >= MIN_PREFIX && word.startsWith(term));
    });
    if (fits) matches.push(i);
  }
  return matches;
}

function highlightOf(text: string, words: Word[], starts: number[], phraseLength: number): SearchHighlight {
  const first = starts[0]!;
  const from = Math.max(0, words[first]!.start - SNIPPET_CONTEXT);
  const to = Math.min(text.length, words[first + phraseLength - 1]!.end + SNIPPET_CONTEXT);
  const prefix = from > 0 ? '…' : '';
  const snippet = `${prefix}${text.slice(from, to)}${to < text.length ? '…' : ''}`;
  const ranges = starts
    .map((start) => ({ start: words[start]!.start, end: words[start + phraseLength - 1]!.end }))
    .filter((range) => range.start >= from && range.end <= to)
    .map((range) => ({ start: range.start - from + prefix.length, length: range.end - range.start }));
  return { snippet, ranges };
}

/** The chats searched: the viewer's current plaintext chats, or the one asked for if the viewer is in it. */
async function searchedChats(prisma: SearchServices['prisma'], viewerId: string, chatId: string | null | undefined): Promise<string[]> {
  const memberships = await prisma.chatMember.findMany({
    where: { userId: viewerId, chat: { encrypted: false }, ...(chatId == null ? {} : { chatId }) },
    select: { chatId: true },
  });
  if (chatId != null && memberships.length === 0) {
    // An encrypted chat one is in is not searchable; any other is as unknown as a missing one.
    const member = await prisma.chatMember.findUnique({ where: { chatId_userId: { chatId, userId: viewerId } }, select: { chatId: true } });
    if (!member) throw notFound(CHAT_NOT_FOUND);
  }
  return memberships.map((m) => m.chatId);
}

/**
 * The GIN lookup alone (MATERIALIZED), the chat and cursor filters after it: a token belongs to one
 * chat, so the lookup yields exactly the viewer's matches. The planner cannot estimate how rare a
 * token is (no token is common enough for element statistics, so it assumes 0.5 % per token: a
 * fifth of the table for 50 chats' tokens), and so, left to itself, prefers a sequential scan, an
 * AND with the chats' 50,000 entries from the (chatId, messageId) index, or a walk of all messages
 * newest first (bench/RESULTS.md, "rare words"). Hence `ginOnly`.
 */
const ginMatches = (chatIds: string[], tokens: Buffer[][], before: string | null, limit: number | null) => {
  const conditions = tokens.map((set) => Prisma.sql`s."tokens" && ${tokenArray(set)}`);
  return Prisma.sql`
    WITH gin AS MATERIALIZED (
      SELECT s."messageId", s."chatId" FROM "MessageSearch" s
      WHERE ${Prisma.join(conditions, ' AND ')}
      ${limit === null ? Prisma.empty : Prisma.sql`LIMIT ${limit}`}
    ), matched AS (
      SELECT "messageId" FROM gin WHERE "chatId" = ANY(${chatIds}::text[]) AND (${before}::text IS NULL OR "messageId" < ${before})
    )`;
};

/**
 * Runs `query` in a transaction whose planner may only use bitmap scans (here, the GIN index's),
 * and without JIT, which the inflated estimates would switch on (~70 ms of compiling).
 */
async function ginOnly<T>(prisma: SearchServices['prisma'], query: Prisma.Sql): Promise<T[]> {
  const [, rows] = await prisma.$transaction([
    prisma.$queryRaw`SELECT set_config('enable_seqscan', 'off', true), set_config('enable_indexscan', 'off', true), set_config('jit', 'off', true)`,
    prisma.$queryRaw<T[]>(query),
  ]);
  return rows;
}

/** The newest `take` matches before `before`, newest first (ids; deleted messages have no entry). */
async function candidates({ prisma }: SearchServices, chatIds: string[], tokens: Buffer[][], before: string | null, take: number) {
  const rows = await ginOnly<{ messageId: string }>(
    prisma,
    Prisma.sql`${ginMatches(chatIds, tokens, before, null)} SELECT "messageId" FROM matched ORDER BY "messageId" DESC LIMIT ${take}`,
  );
  return rows.map((row) => row.messageId);
}

/**
 * The ids of matches before `before`, in no order, if the word has fewer than `limit` matches in
 * all (the GIN lookup stops reading rows at `limit`); null if it has more.
 */
async function allMatchesIfFew({ prisma }: SearchServices, chatIds: string[], tokens: Buffer[][], before: string | null, limit: number) {
  const rows = await ginOnly<{ messageId: string | null; total: number }>(
    prisma,
    Prisma.sql`${ginMatches(chatIds, tokens, before, limit)}
      SELECT matched."messageId", (SELECT count(*)::int FROM gin) AS total FROM (SELECT 1) one LEFT JOIN matched ON true`,
  );
  if (rows[0]!.total >= limit) return null;
  return rows.flatMap((row) => row.messageId ?? []);
}

/** Rows of each chat's index entries one window round reads, newest first. */
const WINDOW_PER_CHAT = 25;

interface WindowRow {
  chatIndex: number;
  messageId: string;
  hit: boolean;
}

interface ChatWindow {
  /** 1-based position in the searched chats (and in the token slices). */
  index: number;
  chatId: string;
  /** Read down to here (exclusive next time); null: not read yet. */
  before: string | null;
  done: boolean;
}

/**
 * One window round: for each chat given, its next WINDOW_PER_CHAT entries before its own place,
 * newest first, each marked if it holds every term. Bounded by chats x window whatever the words.
 */
function windowRows({ prisma }: SearchServices, keyring: Keyring, allChatIds: string[], chats: ChatWindow[], terms: string[]) {
  const { flat, keys } = chatTokenSlices(keyring, allChatIds, terms);
  const width = terms.length;
  // One chat's slice under key k of the flat [chat][key][term] array (1-based, inclusive).
  const underKey = Array.from({ length: keys }, (_, k) =>
    Prisma.sql`s."tokens" @> (${tokenArray(flat)})[((c.i - 1) * ${keys} + ${k}) * ${width} + 1 : ((c.i - 1) * ${keys} + ${k} + 1) * ${width}]`,
  );
  return prisma.$queryRaw<WindowRow[]>`
    SELECT (c.i)::int AS "chatIndex", w."messageId", w.hit
    FROM unnest(${chats.map((c) => c.chatId)}::text[], ${chats.map((c) => c.index)}::int[], ${chats.map((c) => c.before)}::text[]) AS c(id, i, before)
    CROSS JOIN LATERAL (
      SELECT s."messageId", (${Prisma.join(underKey, ' OR ')}) AS hit FROM "MessageSearch" s
      WHERE s."chatId" = c.id AND (c.before IS NULL OR s."messageId" < c.before)
      ORDER BY s."messageId" DESC LIMIT ${WINDOW_PER_CHAT}
    ) w`;
}

/** Where the window rounds are: each chat's reading, hits not yet settled, and the settled point. */
interface WindowState {
  windows: ChatWindow[];
  /** Chats the next round reads. */
  reading: ChatWindow[];
  pending: string[];
  /** Everything at or after it is settled. */
  from: string | null;
  /** Every chat was read to its end: nothing is left. */
  exhausted: boolean;
  rounds: number;
}

const windowState = (chatIds: string[], after: string | null): WindowState => {
  const windows = chatIds.map((chatId, i) => ({ index: i + 1, chatId, before: after, done: false }));
  return { windows, reading: windows, pending: [], from: after, exhausted: false, rounds: 0 };
};

/**
 * Newest matches by merging each chat's entries newest first: everything at or after `from` (the
 * newest place where a chat's reading stopped short of its end) is settled. Each round reads on
 * only in the chats that hold `from` above the page's oldest wanted hit (a busy chat, say), so
 * common words finish in a round or two. Runs rounds until `rounds` were run in all; true once
 * the page is full.
 */
async function windowPass(services: SearchServices, keyring: Keyring, chatIds: string[], terms: string[], state: WindowState, rounds: number, take: number, check: (ids: string[]) => Promise<boolean>) {
  const { windows } = state;
  while (state.rounds < rounds && state.reading.length > 0 && !state.exhausted) {
    state.rounds++;
    const rows = await windowRows(services, keyring, chatIds, state.reading, terms);
    for (const chat of state.reading) {
      const mine = rows.filter((row) => row.chatIndex === chat.index);
      chat.done = mine.length < WINDOW_PER_CHAT;
      chat.before = mine.at(-1)?.messageId ?? chat.before;
      state.pending.push(...mine.filter((row) => row.hit).map((row) => row.messageId));
    }
    const open = windows.filter((chat) => !chat.done);
    const from = open.reduce<string | null>((newest, chat) => (newest === null || chat.before! > newest ? chat.before : newest), null);
    state.from = from;
    state.exhausted = from === null;
    state.pending.sort().reverse();
    const ready = state.pending.filter((id) => from === null || id >= from);
    state.pending = state.pending.slice(ready.length);
    if (await check(ready)) return true;
    if (from === null) return false;
    // Only chats whose reading stopped above the oldest hit this page could still want are read on.
    const wanted = state.pending[take - 1] ?? '';
    state.reading = open.filter((chat) => chat.before! > wanted);
  }
  return false;
}

/**
 * How searchMessages looks for matches: first one GIN lookup of at most `firstProbeCap` + 1
 * matches (fewer, and they are all of them: a rare word, sorted and done); then
 * `probeAfterRounds` window rounds (common words fill their page there); then one GIN lookup of at
 * most `probeCap` + 1 (fewer: all the rest); more, and the window rounds go on to `windowRounds`,
 * then the GIN index a page at a time. A cap of 0 skips that lookup. Exported so the bench
 * compares plans in one run.
 */
export interface SearchPlan {
  firstProbeCap: number;
  probeAfterRounds: number;
  probeCap: number;
  windowRounds: number;
}

/**
 * Measured on the bench's 1M set (bench/RESULTS.md): a probe first makes rare words cheapest but
 * costs common ones the whole GIN bitmap of their tens of thousands of matches; one window round
 * first keeps common words as they were and still cuts rare words to a round and one probe.
 */
export const SEARCH_PLAN: SearchPlan = { firstProbeCap: 0, probeAfterRounds: 1, probeCap: 1_000, windowRounds: 4 };

/** A page of messages whose text holds the query's phrase, newest first (by id: uuidv7, in time order). */
export async function searchMessages(services: SearchServices, viewerId: string, args: SearchArgs, plan = SEARCH_PLAN): Promise<SearchPage> {
  const terms = queryWords(args.query);
  const distinct = [...new Set(terms)];
  const after = args.after == null ? null : decodeCursor(args.after);
  const chatIds = await searchedChats(services.prisma, viewerId, args.chatId);
  if (chatIds.length === 0 || args.first === 0) return { hits: [], hasNextPage: false };
  const hits: SearchHit[] = [];
  /** Decrypts and phrase-checks candidates in order; true once the page is full and one more was found. */
  const check = async (batch: Message[]) => {
    const opened = await services.cipher.open(
      batch.map((message) => ({ keyId: message.contentKeyId!, aad: messageAad(message.id), ciphertext: message.content! })),
    );
    for (const [index, message] of batch.entries()) {
      const text = decodeContent(opened[index]!).text ?? '';
      const words = wordsOf(text);
      const starts = phraseMatches(words, terms);
      if (starts.length === 0) continue;
      if (hits.length === args.first) return true;
      hits.push({ message, highlight: highlightOf(text, words, starts, terms.length), cursor: encodeCursor(message.id) });
    }
    return false;
  };

  const take = Math.max(20, args.first + 1);
  // Newest first, a batch at a time: a common word's page is full after the first.
  const checkIds = async (ids: string[]) => {
    for (let start = 0; start < ids.length; start += take) {
      const chunk = ids.slice(start, start + take);
      const found = await services.prisma.message.findMany({ where: { id: { in: chunk }, deletedAt: null } });
      const byId = new Map(found.map((message) => [message.id, message]));
      if (await check(chunk.flatMap((id) => byId.get(id) ?? []))) return true;
    }
    return false;
  };
  // Every key's tokens until the re-index after a rotation has finished; then the current key's only.
  const keyring = await queryKeyring(services);
  const tokens = queryTokens(keyring, chatIds, distinct);
  if (plan.firstProbeCap > 0) {
    const all = await allMatchesIfFew(services, chatIds, tokens, after, plan.firstProbeCap + 1);
    if (all) return { hits, hasNextPage: await checkIds(all.sort().reverse()) };
  }
  const state = windowState(chatIds, after);
  if (await windowPass(services, keyring, chatIds, distinct, state, Math.min(plan.probeAfterRounds, plan.windowRounds), take, checkIds)) {
    return { hits, hasNextPage: true };
  }
  if (state.exhausted) return { hits, hasNextPage: false };
  if (plan.probeCap > 0) {
    const rest = await allMatchesIfFew(services, chatIds, tokens, state.from, plan.probeCap + 1);
    if (rest) {
      // All matches past the settled point, and hits the window read but did not settle among them.
      rest.sort().reverse();
      return { hits, hasNextPage: await checkIds(rest) };
    }
  }
  if (await windowPass(services, keyring, chatIds, distinct, state, plan.windowRounds, take, checkIds)) return { hits, hasNextPage: true };
  if (state.exhausted) return { hits, hasNextPage: false };

  // Past the window: the GIN index, which for words that got here is the cheaper way.
  for (let before = state.from; ; ) {
    const ids = await candidates(services, chatIds, tokens, before, take);
    if (await checkIds(ids)) return { hits, hasNextPage: true };
    if (ids.length < take) return { hits, hasNextPage: false };
    before = ids.at(-1)!;
  }
}
