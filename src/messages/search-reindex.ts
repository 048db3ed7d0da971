// After a key rotation, the blind index moves to the current key in the background: entries are
// walked in message id order (keyset pagination), a small batch at a time with a pause between,
// and each entry under another key gets its message's current text tokenised under the current
// key. Progress (the last id walked) is kept in SearchReindex, so a restart resumes where the last
// run stopped; a rewrite only lands if the entry is unchanged since it was read (its row version,
// xmin), so an edit in between wins and running twice is harmless. Once no readable entry is under
// another key, queries stop computing old keys' tokens (queryKeyring), and the old key is no longer
// needed for search.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Keyring } from '../env.ts';
import type { Services } from '../services.ts';
import { decodeContent, messageAad } from './content.ts';
import { indexTokens, tokenArray } from './search-index.ts';

export type ReindexServices = Pick<Services, 'prisma' | 'cipher' | 'config' | 'logger'>;

/** How often a search checks whether the re-index finished, until it has. */
const FINISHED_RECHECK_MS = 30_000;
/** A progress line in the log at most this often. */
const PROGRESS_LOG_MS = 10_000;

interface WalkedRow {
  messageId: string;
  chatId: string;
  /** The entry's row version (xmin) when read: the rewrite is conditional on it. */
  version: string;
  /** Whether its key is not the current one; only then is its message read. */
  stale: boolean;
  content: Uint8Array | null;
  contentKeyId: string | null;
  deleted: boolean | null;
}

export interface BatchResult {
  /** Entries walked (0: the end of the index). */
  walked: number;
  /** Last message id walked: the next batch starts after it. */
  cursor: string | null;
  rewritten: number;
  /** Entries of messages with no text left, or gone (their entry should not exist). */
  dropped: number;
  /** Entries whose message is sealed under a key no longer in the keyring: left as they are. */
  unreadable: number;
}

/** Walks the next `batchSize` entries after `after` and moves the stale ones to the current key. */
export async function reindexBatch(services: ReindexServices, after: string | null, batchSize: number): Promise<BatchResult> {
  const { prisma, cipher } = services;
  const keyring = services.config.messageEncryption;
  const current = keyring.currentKeyId;
  const rows = await prisma.$queryRaw<WalkedRow[]>`
    WITH span AS (
      SELECT s."messageId", s."chatId", s."keyId", s.xmin::text AS version FROM "MessageSearch" s
      WHERE s."messageId" > ${after ?? ''} ORDER BY s."messageId" LIMIT ${batchSize}
    )
    SELECT span."messageId", span."chatId", span.version, span."keyId" <> ${current} AS stale,
           m."content", m."contentKeyId", m."deletedAt" IS NOT NULL AS deleted
    FROM span LEFT JOIN "Message" m ON m."id" = span."messageId" AND span."keyId" <> ${current}
    ORDER BY span."messageId"`;
  const result: BatchResult = { walked: rows.length, cursor: rows.at(-1)?.messageId ?? after, rewritten: 0, dropped: 0, unreadable: 0 };
  const stale = rows.filter((row) => row.stale);
  const unreadable = stale.filter((row) => row.contentKeyId != null && !(row.contentKeyId in keyring.keys));
  const readable = stale.filter((row) => row.content != null && !row.deleted && row.contentKeyId! in keyring.keys);
  result.unreadable = unreadable.length;
  const opened = await cipher.open(readable.map((row) => ({ keyId: row.contentKeyId!, aad: messageAad(row.messageId), ciphertext: row.content! })));

  const rewrites: Array<{ row: WalkedRow; tokens: Buffer[] }> = [];
  const drops = stale.filter((row) => row.content == null || row.deleted);
  for (const [index, row] of readable.entries()) {
    const tokens = indexTokens(keyring, row.chatId, decodeContent(opened[index]!).text);
    if (tokens.length === 0) drops.push(row);
    else rewrites.push({ row, tokens });
  }
  if (rewrites.length > 0) {
    // Each entry's tokens are one slice of a flat array (1-based, inclusive bounds).
    const flat = rewrites.flatMap((rewrite) => rewrite.tokens);
    const bounds: number[] = [];
    let end = 0;
    for (const { tokens } of rewrites) bounds.push(end + 1, (end += tokens.length));
    result.rewritten = await prisma.$executeRaw`
      UPDATE "MessageSearch" s SET "tokens" = (${tokenArray(flat)})[u.lo:u.hi], "keyId" = ${current}
      FROM unnest(${rewrites.map((r) => r.row.messageId)}::text[], ${rewrites.map((r) => r.row.version)}::text[],
                  ${bounds.filter((_, i) => i % 2 === 0)}::int[], ${bounds.filter((_, i) => i % 2 === 1)}::int[]) AS u(id, version, lo, hi)
      WHERE s."messageId" = u.id AND s.xmin::text = u.version`;
  }
  if (drops.length > 0) {
    result.dropped = await prisma.$executeRaw`
      DELETE FROM "MessageSearch" s USING unnest(${drops.map((row) => row.messageId)}::text[], ${drops.map((row) => row.version)}::text[]) AS u(id, version)
      WHERE s."messageId" = u.id AND s.xmin::text = u.version`;
  }
  return result;
}

/** Whether an entry the keyring can read is still under another key (one written behind the walk). */
async function staleEntriesLeft({ prisma, config }: ReindexServices): Promise<boolean> {
  const keyring = config.messageEncryption;
  const rows = await prisma.$queryRaw<Array<{ left: boolean }>>`
    SELECT EXISTS (
      SELECT 1 FROM "MessageSearch" s JOIN "Message" m ON m."id" = s."messageId"
      WHERE s."keyId" <> ${keyring.currentKeyId} AND m."contentKeyId" = ANY(${Object.keys(keyring.keys)}::text[])
    ) AS "left"`;
  return rows[0]!.left;
}

export interface PassOptions {
  batchSize: number;
  pauseMs: number;
  /** Aborted: the pass stops after the batch in progress (its progress is kept). */
  signal?: AbortSignal;
  /** Stop after this many batches (tests: a run cut short, as by a restart). */
  maxBatches?: number;
  /** Told each batch's result (metrics). */
  onBatch?: (batch: BatchResult) => void;
}

export type PassOutcome = 'finished' | 'stopped';

/**
 * Moves every entry to the current key, resuming from the stored cursor; 'finished' once none
 * readable is left under another key (then recorded, and queries use the current key alone).
 */
export async function runReindexPass(services: ReindexServices, options: PassOptions): Promise<PassOutcome> {
  const { prisma, logger } = services;
  const keyring = services.config.messageEncryption;
  const keyId = keyring.currentKeyId;
  const created = await prisma.searchReindex.createMany({ data: [{ keyId }], skipDuplicates: true });
  if (created.count > 0) {
    // Entries are about to move away from any other key: a rotation back to one walks again.
    await prisma.searchReindex.updateMany({ where: { keyId: { not: keyId } }, data: { cursor: null, finishedAt: null } });
  }
  const state = await prisma.searchReindex.findUniqueOrThrow({ where: { keyId } });
  if (state.finishedAt) {
    markFinished(keyring);
    return 'finished';
  }
  if (Object.keys(keyring.keys).length === 1) {
    // Nothing to walk: an entry under another key belongs to a message sealed under a key that is gone (unreadable anyway).
    await prisma.searchReindex.update({ where: { keyId }, data: { finishedAt: new Date() } });
    markFinished(keyring);
    return 'finished';
  }
  let cursor = state.cursor;
  let reindexed = state.reindexed;
  let unreadable = 0;
  let lastLog = Date.now();
  for (let batches = 0; ; batches++) {
    if (options.signal?.aborted || (options.maxBatches !== undefined && batches >= options.maxBatches)) return 'stopped';
    const batch = await reindexBatch(services, cursor, options.batchSize);
    options.onBatch?.(batch);
    unreadable += batch.unreadable;
    if (batch.walked === 0) {
      if (await staleEntriesLeft(services)) {
        // Written under an old key behind the walk (an instance still on the old configuration): walk again.
        logger.info({ keyId }, 'search re-index: entries under an old key were written behind it; walking the index again');
        cursor = null;
        await prisma.searchReindex.update({ where: { keyId }, data: { cursor } });
        continue;
      }
      await prisma.searchReindex.update({ where: { keyId }, data: { finishedAt: new Date() } });
      markFinished(keyring);
      logger.info({ keyId, reindexed, unreadable }, 'search re-index finished: every entry is under the current key');
      return 'finished';
    }
    cursor = batch.cursor;
    reindexed += batch.rewritten;
    await prisma.searchReindex.update({ where: { keyId }, data: { cursor, reindexed } });
    if (Date.now() - lastLog >= PROGRESS_LOG_MS) {
      lastLog = Date.now();
      logger.info({ keyId, reindexed, cursor }, 'search re-index in progress');
    }
    await sleep(options.pauseMs, undefined, { signal: options.signal }).catch(() => {});
  }
}

const finished = new WeakMap<Keyring, { done: boolean; checkedAt: number }>();
const currentOnly = new WeakMap<Keyring, Keyring>();

function markFinished(keyring: Keyring) {
  finished.set(keyring, { done: true, checkedAt: Date.now() });
}

/**
 * The keys a query computes tokens under: every key of the keyring while entries may be under an
 * old one, the current key alone once the re-index finished (so a retired key can leave search).
 */
export async function queryKeyring({ prisma, config }: Pick<ReindexServices, 'prisma' | 'config'>): Promise<Keyring> {
  const keyring = config.messageEncryption;
  if (Object.keys(keyring.keys).length === 1) return keyring;
  let state = finished.get(keyring);
  if (!state || (!state.done && Date.now() - state.checkedAt >= FINISHED_RECHECK_MS)) {
    const row = await prisma.searchReindex.findUnique({ where: { keyId: keyring.currentKeyId }, select: { finishedAt: true } });
    state = { done: row?.finishedAt != null, checkedAt: Date.now() };
    finished.set(keyring, state);
  }
  if (!state.done) return keyring;
  let only = currentOnly.get(keyring);
  if (!only) {
    only = { currentKeyId: keyring.currentKeyId, keys: { [keyring.currentKeyId]: keyring.keys[keyring.currentKeyId]! } };
    currentOnly.set(keyring, only);
  }
  return only;
}
