// searchMessages over the blind index (src/messages/search.ts): 1,000,000 messages in 1,000 chats,
// loaded with COPY (bench/search-data.ts), searched by a user in 50 of them; one-word queries of
// words from very common to rare, p50/p99 over real HTTP. Then the cost of indexing at send:
// sendMessage in a closed loop against two servers on the same database, one indexing and one
// not (SEARCH_INDEX_ENABLED=false), in alternating rounds of the same run; the indexing one also
// with a text that mentions a member of the chat, so mention resolution and indexing together are
// compared with both off.
import { performance } from 'node:perf_hooks';
import type { App } from '../src/server/app.ts';
import { SEARCH_PLAN, searchMessages, type SearchPlan } from '../src/messages/search.ts';
import { LOGIN } from '../test/support/operations.ts';
import { mapLimited, postGraphQL } from './graphql-load.ts';
import { loadDataSet, replayDataSet, type DataSet } from './search-data.ts';
import { BENCH_MESSAGE_KEY, BENCH_PASSWORD, BENCH_TEXT, benchConfig, registerUsers, startBenchApp, type BenchContext, type RegisteredUser } from './setup.ts';
import { fixed, percentile, table } from './stats.ts';

const MESSAGES = Number(process.env.SEARCH_BENCH_MESSAGES ?? 1_000_000);
const CHATS = 1_000;
const SEARCHER_CHATS = 50;
const MEMBERS = 20;
const QUERIES_PER_WORD = 200;
const WARM_UP_QUERIES = 20;
const TARGET_P99_MS = 50;
/** Vocabulary ranks queried: the most common word down to a rare one. */
const QUERY_RANKS = [1, 10, 100, 1_000, 4_000];
/** Rounds per variant (three variants, in rotating order). */
const SEND_ROUNDS_EACH = 4;
const SEND_ROUND_MS = 4_000;
const SEND_WARM_UP_MS = 1_000;
const SENDERS = 10;

const SEARCH = `query ($q: String!) { searchMessages(query: $q, first: 20) {
  edges { node { id text sender { id } } highlight { snippet ranges { start length } } } pageInfo { hasNextPage } } }`;
const SEND = `mutation ($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }`;

async function timedQueries(url: string, token: string, word: string) {
  for (let i = 0; i < WARM_UP_QUERIES; i++) await postGraphQL(url, SEARCH, { q: word }, token);
  const times: number[] = [];
  let hits = 0;
  for (let i = 0; i < QUERIES_PER_WORD; i++) {
    const started = performance.now();
    const data = await postGraphQL(url, SEARCH, { q: word }, token);
    times.push(performance.now() - started);
    hits = data.searchMessages.edges.length;
  }
  return { times, hits };
}

async function searchLatency(url: string, searcher: RegisteredUser, data: DataSet) {
  const rows = [];
  let worstP99 = 0;
  for (const rank of QUERY_RANKS) {
    const word = data.vocabulary[rank - 1]!;
    const { times, hits } = await timedQueries(url, searcher.accessToken, word);
    const p99 = percentile(times, 99);
    worstP99 = Math.max(worstP99, p99);
    const share = (data.documentFrequency[rank - 1]! / data.messages) * 100;
    rows.push([
      `rank ${rank}`,
      fixed(share, 2),
      data.searcherDocumentFrequency[rank - 1]!,
      hits,
      fixed(percentile(times, 50), 1),
      fixed(percentile(times, 95), 1),
      fixed(p99, 1),
      fixed(Math.max(...times), 1),
    ]);
  }
  console.log(`\none-word searchMessages(first: 20) over HTTP, ${QUERIES_PER_WORD} sequential queries per word after ${WARM_UP_QUERIES} warm-up`);
  console.log(table(['word', '% of msgs', "matches in user's chats", 'page', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'], rows));
  console.log(`worst p99 ${fixed(worstP99, 1)} ms: ${worstP99 < TARGET_P99_MS ? 'within' : 'OVER'} the ${TARGET_P99_MS} ms target`);
}

/** The plan searchMessages had before the GIN probe: four window rounds, then the GIN index a page at a time. */
const WINDOWS_THEN_GIN: SearchPlan = { firstProbeCap: 0, probeAfterRounds: 4, probeCap: 0, windowRounds: 4 };
const PLAN_QUERIES = 100;

/**
 * The plans in one run, in process (no HTTP), interleaved query by query so the machine's load
 * falls on both alike: how much of the difference is the plan.
 */
async function planComparison(app: App, searcher: RegisteredUser, data: DataSet) {
  const plans: Array<[string, SearchPlan]> = [
    ['4 window rounds, then GIN pages (before)', WINDOWS_THEN_GIN],
    [`1 window round, GIN probe of ${SEARCH_PLAN.probeCap} (now)`, SEARCH_PLAN],
    ['GIN probe of 100 first, then as now', { ...SEARCH_PLAN, firstProbeCap: 100 }],
  ];
  const rows = [];
  for (const rank of QUERY_RANKS) {
    const word = data.vocabulary[rank - 1]!;
    const times = plans.map(() => [] as number[]);
    const pages = plans.map(() => '');
    for (let i = 0; i < WARM_UP_QUERIES + PLAN_QUERIES; i++) {
      for (const [index, [, plan]] of plans.entries()) {
        const started = performance.now();
        const page = await searchMessages(app.services, searcher.userId, { query: word, first: 20 }, plan);
        if (i >= WARM_UP_QUERIES) times[index]!.push(performance.now() - started);
        pages[index] = page.hits.map((hit) => hit.message.id).join();
      }
    }
    if (pages.some((page) => page !== pages[0])) throw new Error(`the plans disagree on the page for rank ${rank}`);
    for (const [index, [name]] of plans.entries()) {
      rows.push([`rank ${rank}`, name, fixed(percentile(times[index]!, 50), 1), fixed(percentile(times[index]!, 99), 1)]);
    }
  }
  console.log(`\nsearchMessages(first: 20) in process, the plans interleaved, ${PLAN_QUERIES} queries each per word after ${WARM_UP_QUERIES} warm-up (same pages checked)`);
  console.log(table(['word', 'plan', 'p50 ms', 'p99 ms'], rows));
}

interface SendVariant {
  label: string;
  url: string;
  /** Whether each sender writes `@<another member of its chat>` before BENCH_TEXT (mention resolution at work). */
  mention: boolean;
}

interface Round {
  variant: SendVariant;
  sends: number;
  ms: number;
  latencies: number[];
}

/** SENDERS closed-loop senders, each into a chat of its own, for `ms` (after a warm-up). */
async function sendRound(variant: SendVariant, senders: Sender[]): Promise<Round> {
  const latencies: number[] = [];
  let measuring = false;
  let stop = false;
  const loops = senders.map(async ({ token, chatId, mentionText }) => {
    const text = variant.mention ? mentionText : BENCH_TEXT;
    while (!stop) {
      const started = performance.now();
      await postGraphQL(variant.url, SEND, { input: { chatId, kind: 'TEXT', text } }, token);
      if (measuring) latencies.push(performance.now() - started);
    }
  });
  await new Promise((resolve) => setTimeout(resolve, SEND_WARM_UP_MS));
  measuring = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, SEND_ROUND_MS));
  measuring = false;
  const ms = performance.now() - started;
  stop = true;
  await Promise.all(loops);
  return { variant, sends: latencies.length, ms, latencies };
}

interface Sender {
  token: string;
  chatId: string;
  /** BENCH_TEXT after `@username` of another member of the sender's chat. */
  mentionText: string;
}

async function sendCost(urls: { on: string; off: string }, senders: Sender[]) {
  const variants: SendVariant[] = [
    { label: 'both off (no mention, SEARCH_INDEX_ENABLED=false)', url: urls.off, mention: false },
    { label: 'search indexing on', url: urls.on, mention: false },
    { label: 'indexing on + one @mention resolved', url: urls.on, mention: true },
  ];
  // Each variant early and late in rotating orders (012 210 120 021), so drift over the run cancels out.
  const order = [0, 1, 2, 2, 1, 0, 1, 2, 0, 0, 2, 1].slice(0, SEND_ROUNDS_EACH * 3);
  const rounds: Round[] = [];
  for (const index of order) rounds.push(await sendRound(variants[index]!, senders));
  const summary = (variant: SendVariant) => {
    const mine = rounds.filter((round) => round.variant === variant);
    const latencies = mine.flatMap((round) => round.latencies);
    const perSecond = (mine.reduce((sum, round) => sum + round.sends, 0) / mine.reduce((sum, round) => sum + round.ms, 0)) * 1000;
    return { perSecond, p50: percentile(latencies, 50), p99: percentile(latencies, 99), sends: latencies.length };
  };
  const results = variants.map(summary);
  const off = results[0]!;
  console.log(
    `\nsendMessage over HTTP, ${SENDERS} closed-loop senders each in its own chat of the loaded set, ${SEND_ROUNDS_EACH} rounds of ${SEND_ROUND_MS / 1000} s per variant (orders 012 210 120 021), each after ${SEND_WARM_UP_MS / 1000} s warm-up`,
  );
  console.log(`text: ${BENCH_TEXT.length} characters (${JSON.stringify(BENCH_TEXT)}); with the mention, "@<member> " before it`);
  console.log(
    table(
      ['variant', 'sends', 'sends/s', 'p50 ms', 'p99 ms', 'x both off (sends/s)'],
      variants.map((variant, index) => {
        const result = results[index]!;
        return [variant.label, result.sends, fixed(result.perSecond, 0), fixed(result.p50, 1), fixed(result.p99, 1), fixed(result.perSecond / off.perSecond, 2)];
      }),
    ),
  );
}

/** The users an earlier run registered (BENCH_REUSE_DATABASE=1), signed in again: the searcher is the one in SEARCHER_CHATS chats. */
async function signInAgain(app: App, url: string): Promise<RegisteredUser[]> {
  const rows = await app.services.prisma.$queryRaw<Array<{ userId: string; username: string; chats: number }>>`
    SELECT m."userId", u."username", count(*)::int AS chats FROM "ChatMember" m JOIN "User" u ON u."id" = m."userId"
    GROUP BY 1, 2 ORDER BY (count(*) = ${SEARCHER_CHATS}) DESC, u."username"`;
  return mapLimited(rows, 4, async (row) => {
    const { login } = await postGraphQL(url, LOGIN, { input: { login: row.username, password: BENCH_PASSWORD } });
    return { userId: row.userId, username: row.username, accessToken: login.accessToken as string };
  });
}

export async function runSearch({ databaseUrl }: BenchContext) {
  // The load outlasts the default 15-minute access tokens.
  const common = { DATABASE_URL: databaseUrl, MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY, PUSH_ENABLED: 'false', JWT_TTL: '24h' };
  const on = await startBenchApp(benchConfig(common));
  const off = await startBenchApp(benchConfig({ ...common, SEARCH_INDEX_ENABLED: 'false' }));
  try {
    const reuse = process.env.BENCH_REUSE_DATABASE === '1' && (await on.app.services.prisma.messageSearch.count()) >= MESSAGES;
    const users = reuse ? await signInAgain(on.app, on.url) : await registerUsers(on.url, MEMBERS + 1, 'search');
    const [searcher, ...members] = users as [RegisteredUser, ...RegisteredUser[]];
    console.log(
      reuse
        ? `reusing the ${MESSAGES} messages in ${CHATS} chats an earlier run loaded (BENCH_REUSE_DATABASE=1); the searching user is in ${SEARCHER_CHATS} of them`
        : `loading ${MESSAGES} messages in ${CHATS} chats (COPY); the searching user is in ${SEARCHER_CHATS} of them`,
    );
    const data = reuse
      ? replayDataSet(CHATS, MESSAGES, SEARCHER_CHATS)
      : await loadDataSet({
          databaseUrl,
          config: on.app.services.config,
          cipher: on.app.services.cipher,
          searcherId: searcher.userId,
          memberIds: members.map((member) => member.userId),
          chats: CHATS,
          messages: MESSAGES,
          searcherChats: SEARCHER_CHATS,
        });
    const sizes = await on.app.services.prisma.$queryRaw<Array<{ table: string; index: string; tokens: number }>>`
      SELECT pg_size_pretty(pg_table_size('"MessageSearch"')) AS "table",
             pg_size_pretty(pg_relation_size('"MessageSearch_tokens_idx"')) AS "index",
             (SELECT avg(cardinality("tokens"))::float FROM "MessageSearch") AS "tokens"`;
    console.log(
      (reuse ? '' : `loaded in ${fixed(data.loadSeconds, 0)} s (generate, seal, tokenise, COPY), GIN index built in ${fixed(data.indexSeconds, 0)} s; `) +
        `MessageSearch ${sizes[0]!.table} + GIN ${sizes[0]!.index}, ${fixed(sizes[0]!.tokens, 1)} tokens per message; ` +
        `texts of 4-14 words from ${data.vocabulary.length} pseudo-words, Zipf (s = 1)`,
    );
    await searchLatency(on.url, searcher, data);
    await planComparison(on.app, searcher, data);
    // Each sender writes into one of its own chats of the loaded set, one the searcher is not in
    // (so a rerun with BENCH_REUSE_DATABASE=1 searches the same chats as the first run).
    const chatOf = await on.app.services.prisma.chatMember.findMany({
      where: {
        userId: { in: members.slice(0, SENDERS).map((member) => member.userId) },
        chat: { members: { none: { userId: searcher.userId } } },
      },
      distinct: ['userId'],
      select: { userId: true, chatId: true, chat: { select: { members: { select: { userId: true, user: { select: { username: true } } }, take: 2 } } } },
    });
    const senders = chatOf.map((row): Sender => {
      const other = row.chat.members.find((member) => member.userId !== row.userId)!;
      return { token: members.find((member) => member.userId === row.userId)!.accessToken, chatId: row.chatId, mentionText: `@${other.user.username} ${BENCH_TEXT}` };
    });
    await sendCost({ on: on.url, off: off.url }, senders);
  } finally {
    await off.app.stop();
    await on.app.stop();
  }
}
