// Batch work over a table in primary-key order (keyset pagination): one pass over the table however
// many batches, each batch its own short statement or transaction.

/**
 * Calls `handle` with the ids of each batch that `page` finds after the last one, until a batch
 * comes back short; returns the sum of what `handle` returned (rows deleted, say).
 * `page(after, take)` must return ids greater than `after` in ascending order.
 */
export async function forEachIdBatch(
  page: (after: string, take: number) => Promise<ReadonlyArray<{ id: string }>>,
  batchSize: number,
  handle: (ids: string[]) => Promise<number>,
): Promise<number> {
  let total = 0;
  for (let after = ''; ; ) {
    const batch = await page(after, batchSize);
    if (batch.length === 0) return total;
    after = batch.at(-1)!.id;
    total += await handle(batch.map((row) => row.id));
    if (batch.length < batchSize) return total;
  }
}
