// Message-table growth: the two reads that touch history, `messages(last: 50, before:)` and the
// `sinceSeq` catch-up, timed at GROWTH_ROWS messages (default 1M; `GROWTH_ROWS=10000000` for 10M),
// on a copy of "Message" (same columns and unique indexes) and on one partitioned by HASH("chatId")
// into 16 partitions. Rows are generated inside PostgreSQL (INSERT ... SELECT generate_series:
// COPY's speed without shipping the data), the indexes built afterwards. Schema `growth` of the
// bench database, dropped at the end. Both tables are loaded first, then read in alternating
// rounds, so neither is timed with only its own pages in the cache.
import pg from 'pg';
import type { BenchContext } from './setup.ts';
import { fixed, percentile, table } from './stats.ts';

const ROWS = Number(process.env.GROWTH_ROWS ?? 1_000_000);
const PER_CHAT = 1_000;
const QUERIES = 400;
const PARTITIONS = 16;

const HISTORY = (name: string) =>
  `SELECT "id", "seq", "senderId", "kind", "content", "createdAt" FROM growth.${name} WHERE "chatId" = $1 AND "seq" < $2 ORDER BY "seq" DESC LIMIT 51`;
const CATCH_UP = (name: string) =>
  `SELECT "id", "seq", "senderId", "kind", "content", "createdAt" FROM growth.${name} WHERE "chatId" = $1 AND "seq" > $2 ORDER BY "seq" ASC LIMIT 101`;

export async function runMessageGrowth({ databaseUrl }: BenchContext): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const chats = Math.max(1, Math.round(ROWS / PER_CHAT));
  try {
    await client.query('DROP SCHEMA IF EXISTS growth CASCADE; CREATE SCHEMA growth');
    await client.query('CREATE TABLE growth.flat (LIKE public."Message" INCLUDING DEFAULTS)');
    await client.query('CREATE TABLE growth.parted (LIKE public."Message" INCLUDING DEFAULTS) PARTITION BY HASH ("chatId")');
    for (let index = 0; index < PARTITIONS; index++) {
      await client.query(`CREATE TABLE growth.parted_${index} PARTITION OF growth.parted FOR VALUES WITH (MODULUS ${PARTITIONS}, REMAINDER ${index})`);
    }
    const rows = [['round', 'table', 'rows', 'load s', 'size MiB', 'history p50 ms', 'history p99 ms', 'catch-up p50 ms', 'catch-up p99 ms']];
    const loaded = new Map<string, { seconds: number; mib: number }>();
    for (const name of ['flat', 'parted']) loaded.set(name, await load(client, name, chats));
    // Alternating rounds: whichever table was loaded (or read) last has its pages in the cache.
    for (const round of [1, 2]) {
      for (const name of ['flat', 'parted']) {
        const history = await timed(client, `history-${name}`, HISTORY(name), () => [`chat-${random(chats)}`, 50 + random(PER_CHAT - 50)]);
        const catchUp = await timed(client, `catch-up-${name}`, CATCH_UP(name), () => [`chat-${random(chats)}`, PER_CHAT - 20 - random(30)]);
        const { seconds, mib } = loaded.get(name)!;
        rows.push([
          String(round),
          name === 'flat' ? '"Message" copy' : `HASH("chatId") x ${PARTITIONS}`,
          ROWS.toLocaleString('en-US'),
          fixed(seconds),
          fixed(mib, 0),
          fixed(percentile(history, 50), 3),
          fixed(percentile(history, 99), 3),
          fixed(percentile(catchUp, 50), 3),
          fixed(percentile(catchUp, 99), 3),
        ]);
      }
    }
    console.log(`${ROWS.toLocaleString('en-US')} messages in ${chats.toLocaleString('en-US')} chats (${PER_CHAT} each), ~150 bytes of content each;`);
    console.log(`${QUERIES} queries of each kind after 20 warm-up ones, prepared (as the API runs them), random chats; history = 51 rows before a random seq, catch-up = the 20-50 rows after seq last-50..last-20`);
    console.log(table(rows[0]!, rows.slice(1)));
  } finally {
    await client.query('DROP SCHEMA IF EXISTS growth CASCADE').catch(() => {});
    await client.end();
  }
}

const random = (below: number) => Math.floor(Math.random() * below);

/** Fills growth.<name>, builds its indexes, and answers how long that took and its size. */
async function load(client: pg.Client, name: string, chats: number): Promise<{ seconds: number; mib: number }> {
  const started = performance.now();
  await client.query(
    `INSERT INTO growth.${name} ("id", "chatId", "seq", "senderId", "kind", "content", "contentKeyId", "clientMessageId", "createdAt")
     SELECT md5(i::text), 'chat-' || (i % $1), i / $1 + 1, 'user-' || (i % 97), 'TEXT',
            decode(md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text), 'hex'), 'k1', md5((i + 7)::text),
            timestamp '2026-01-01' + (i || ' seconds')::interval
     FROM generate_series(0, $2 - 1) AS i`,
    [chats, ROWS],
  );
  // A partitioned table's unique indexes must include the partition key: (id) and
  // (senderId, clientMessageId) cannot stay unique on their own there.
  const key = name === 'parted' ? ', "chatId"' : '';
  await client.query(`ALTER TABLE growth.${name} ADD PRIMARY KEY ("id"${key})`);
  await client.query(`CREATE UNIQUE INDEX ON growth.${name} ("chatId", "seq")`);
  await client.query(`CREATE UNIQUE INDEX ON growth.${name} ("senderId", "clientMessageId"${key})`);
  await client.query(`VACUUM ANALYZE growth.${name}`);
  const seconds = (performance.now() - started) / 1000;
  // pg_partition_tree lists nothing for a plain table.
  const { rows } = await client.query(
    `SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('growth.${name}')), pg_total_relation_size('growth.${name}'))::bigint AS bytes`,
  );
  return { seconds, mib: Number(rows[0].bytes) / 2 ** 20 };
}

async function timed(client: pg.Client, name: string, text: string, values: () => unknown[]): Promise<number[]> {
  const durations: number[] = [];
  for (let index = 0; index < QUERIES + 20; index++) {
    const started = performance.now();
    await client.query({ name, text, values: values() });
    if (index >= 20) durations.push(performance.now() - started);
  }
  return durations;
}
