// What mention resolution costs sendMessage: the same closed-loop HTTP load as the send-message
// bench, with texts that mention and texts of the same length that do not (`#` for `@`: a text
// without `@` adds nothing to the send's statement, which is the switch), side by side and
// interleaved round by round so load elsewhere on the machine hits both alike. Two shapes: each
// sender in a direct chat mentioning its partner, and all senders (made admins) in one group of 51
// mentioning @all (50 rows per message).
import { buildApp } from '../src/server/app.ts';
import { CREATE_CHAT, SEND_MESSAGE_RECEIPT, SET_CHAT_MEMBER_ROLE } from '../test/support/operations.ts';
import { mapLimited, postGraphQL, SEQUENCE_PLACEHOLDER, startLoadProcess, type LoadSummary } from './graphql-load.ts';
import { countOf, totalOf } from './outcomes.ts';
import { BENCH_TEXT, benchConfig, registerUsers, SEND_LOAD, type BenchContext } from './setup.ts';
import { fixed, median, sleep, table } from './stats.ts';

const ROUNDS = 3;
const WARM_UP_MS = 1_000;
const DURATION_MS = 5_000;

interface Variant {
  label: string;
  shape: 'direct' | 'group';
  mentions: boolean;
}

const VARIANTS: Variant[] = [
  { label: 'direct, no mention', shape: 'direct', mentions: false },
  { label: 'direct, @partner', shape: 'direct', mentions: true },
  { label: 'group of 51, no mention', shape: 'group', mentions: false },
  { label: 'group of 51, @all', shape: 'group', mentions: true },
];

export async function runSendMentions({ databaseUrl }: BenchContext): Promise<void> {
  const senders = SEND_LOAD.senders;
  console.log(`${senders} senders in a closed loop over HTTP, ${WARM_UP_MS / 1_000} s warm-up + ${DURATION_MS / 1_000} s measured, ${ROUNDS} rounds per variant interleaved; shown: medians over the rounds`);
  console.log(`text: BENCH_TEXT plus " @<partner>" or " @all"; without mention the same with "#" for "@" (same length, no resolution)`);
  console.log('');
  const app = await buildApp({ config: benchConfig({ DATABASE_URL: databaseUrl }) });
  const { url } = await app.start();
  const load = startLoadProcess();
  try {
    const accounts = await registerUsers(url, senders + 1, 'mention');
    const [hub, ...others] = accounts as [(typeof accounts)[number], ...typeof accounts];
    const direct = await mapLimited(others, 10, async (sender) => {
      const { createChat } = await postGraphQL(url, CREATE_CHAT, { input: { kind: 'DIRECT', memberIds: [hub.userId] } }, sender.accessToken);
      return createChat.id as string;
    });
    const { createChat: group } = await postGraphQL(url, CREATE_CHAT, { input: { kind: 'GROUP', title: 'Mention bench', memberIds: others.map((u) => u.userId) } }, hub.accessToken);
    await mapLimited(others, 10, (sender) => postGraphQL(url, SET_CHAT_MEMBER_ROLE, { chatId: group.id, userId: sender.userId, role: 'ADMIN' }, hub.accessToken));

    const body = (variant: Variant, index: number) => {
      const mention = variant.shape === 'direct' ? `@${hub.username}` : '@all';
      const text = `${BENCH_TEXT} ${variant.mentions ? mention : mention.replace('@', '#')}`;
      const chatId = variant.shape === 'direct' ? direct[index]! : group.id;
      const input = { chatId, kind: 'TEXT', text, clientMessageId: `${variant.label}-${index}-${Date.now()}-${SEQUENCE_PLACEHOLDER}` };
      return JSON.stringify({ query: SEND_MESSAGE_RECEIPT, variables: { input } });
    };
    const runs = new Map<Variant, LoadSummary[]>(VARIANTS.map((variant) => [variant, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of VARIANTS) {
        await sleep(500);
        const spec = { url, warmUpMs: WARM_UP_MS, durationMs: DURATION_MS, senders: others.map((sender, index) => ({ token: sender.accessToken, body: body(variant, index) })) };
        runs.get(variant)!.push(await load.run(spec, { onStart: () => {}, onEnd: () => {} }));
      }
    }
    const mentionRows = await app.services.prisma.messageMention.count();
    report(runs);
    console.log(`MessageMention rows written: ${mentionRows}`);
  } finally {
    await load.close();
    await app.stop();
  }
}

function report(runs: Map<Variant, LoadSummary[]>) {
  const okPerSecond = (summary: LoadSummary) => (countOf(summary.codes, 'OK') * 1_000) / summary.windowMs;
  const stats = new Map(
    [...runs].map(([variant, summaries]) => [
      variant,
      {
        rate: median(summaries.map(okPerSecond)),
        p50: median(summaries.map((s) => s.latencyMs.p50)),
        p99: median(summaries.map((s) => s.latencyMs.p99)),
        errors: summaries.reduce((sum, s) => sum + totalOf(s.codes) - countOf(s.codes, 'OK'), 0),
        rounds: summaries.map((s) => fixed(okPerSecond(s), 0)).join(' / '),
      },
    ]),
  );
  console.log(
    table(
      ['variant', 'ok/s', 'p50 ms', 'p99 ms', 'errors', 'ok/s per round'],
      [...stats].map(([variant, s]) => [variant.label, fixed(s.rate, 0), fixed(s.p50, 1), fixed(s.p99, 1), s.errors, s.rounds]),
    ),
  );
  console.log('');
  for (const shape of ['direct', 'group'] as const) {
    const off = stats.get(VARIANTS.find((v) => v.shape === shape && !v.mentions)!)!;
    const on = stats.get(VARIANTS.find((v) => v.shape === shape && v.mentions)!)!;
    console.log(`${shape}: with mentions / without = ok/s x${fixed(on.rate / off.rate, 2)}, p50 x${fixed(on.p50 / off.p50, 2)}, p99 x${fixed(on.p99 / off.p99, 2)}`);
  }
}
