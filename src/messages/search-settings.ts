// The settings src/env.ts validates for searchMessages' blind index and its re-index after a key
// rotation (src/messages/search-reindex.ts).
import { z } from 'zod';
import { duration, flag } from '../env-fields.ts';

export const searchSettings = {
  /** `false` stops indexing new and edited messages for searchMessages (benchmarks compare). Default true. */
  SEARCH_INDEX_ENABLED: flag.default(true),
  /** `false` stops the background re-index that moves index entries to the current key after a rotation. Default true. */
  SEARCH_REINDEX_ENABLED: flag.default(true),
  /** Index entries the re-index reads and rewrites per statement. Default 200. */
  SEARCH_REINDEX_BATCH: z.coerce.number().int().min(1).max(5_000).default(200),
  /** Pause between two re-index batches, so it never takes the database from sends. Default 50ms. */
  SEARCH_REINDEX_PAUSE: duration('50ms'),
};

type SearchEnv = { [K in keyof typeof searchSettings]: z.output<(typeof searchSettings)[K]> };

export interface SearchConfig {
  indexing: boolean;
  reindex: { enabled: boolean; batchSize: number; pauseMs: number };
}

export const toSearchConfig = (env: SearchEnv): SearchConfig => ({
  indexing: env.SEARCH_INDEX_ENABLED,
  reindex: { enabled: env.SEARCH_INDEX_ENABLED && env.SEARCH_REINDEX_ENABLED, batchSize: env.SEARCH_REINDEX_BATCH, pauseMs: env.SEARCH_REINDEX_PAUSE },
});
