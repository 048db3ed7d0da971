// End-to-end encryption under load, over real HTTP from a separate load process:
// 1. preKeyBundles: 50 claimers in a closed loop, each fetching the bundle of a target of its own
//    (one device, 200 one-time pre-keys: every call claims one until it runs out), beside an
//    authenticated `user(id:) { id }` through the same path (what any signed-in read costs here).
// 2. sendEncryptedMessage to a group of 50 devices (50 members, one device each): every send carries
//    49 envelopes of 200 random bytes; beside plaintext sendMessage of 200 characters by the same
//    50 senders to a plaintext group of the same members, in the same run.
import { randomBytes } from 'node:crypto';
import { generateDeviceKeys, uploadInput } from '../test/support/e2e-client.ts';
import { CREATE_CHAT, SEND_MESSAGE_RECEIPT } from '../test/support/operations.ts';
import { mapLimited, postGraphQL, SEQUENCE_PLACEHOLDER, startLoadProcess, type LoadProcess, type LoadSummary, type SenderSpec } from './graphql-load.ts';
import { hostBusyShare, sampleHostCpu } from './host-cpu.ts';
import { countOf, describeCounts, totalOf } from './outcomes.ts';
import { benchConfig, registerUsers, startBenchApp, type BenchContext, type RegisteredUser } from './setup.ts';
import { fixed, table } from './stats.ts';

const CLAIMERS = 50;
const KEYS_PER_TARGET = 200;
const ENVELOPE_BYTES = 200;
const WARM_UP_MS = 1_000;
const CLAIM_WINDOW_MS = 5_000;
const SEND_WINDOW_MS = 10_000;

const UPLOAD = 'mutation ($input: UploadDeviceKeysInput!) { uploadDeviceKeys(input: $input) { id } }';
const BUNDLES = 'query ($u: ID!) { preKeyBundles(userId: $u) { device { id } identityKey signedPreKey { keyId publicKey signature } oneTimePreKey { keyId publicKey } } }';
const SEND_ENCRYPTED = 'mutation ($input: SendEncryptedMessageInput!) { sendEncryptedMessage(input: $input) { id seq createdAt } }';

interface Row {
  label: string;
  summary: LoadSummary;
  /** All cores' busy share over the window, whoever used them. */
  hostBusy: number;
  /** This process (the server, worker threads included) over the window. */
  serverCpuMs: number;
  /** Extra per-second figure: keys handed out, or envelopes stored. */
  extra?: string;
}

const body = (query: string, variables: Record<string, unknown>) => JSON.stringify({ query, variables });
const okPerSecond = (summary: LoadSummary) => (countOf(summary.codes, 'OK') / summary.windowMs) * 1_000;

export async function runE2e({ databaseUrl }: BenchContext): Promise<void> {
  // No limit on bundle fetches here: the bench measures the claim, not the limiter.
  const config = benchConfig({ DATABASE_URL: databaseUrl, PRE_KEY_BUNDLE_RATE_LIMIT: '1000000000' });
  const { app, url } = await startBenchApp(config);
  const load = startLoadProcess();
  const { prisma } = app.services;
  try {
    console.log(`${CLAIMERS} clients in a closed loop (one request in flight each, own keep-alive socket), ${WARM_UP_MS / 1_000} s warm-up, then ${CLAIM_WINDOW_MS / 1_000} s (bundles, reads) or ${SEND_WINDOW_MS / 1_000} s (sends) measured`);
    console.log(config.redisUrl ? 'REDIS_URL set: events and jobs go through Redis' : 'REDIS_URL unset: events and push fan-out run in the server process and count in its numbers');
    console.log('host %: all cores\' busy share over the window, whoever used them (other work on the machine included)');
    const [claimers, targets] = [await registerUsers(url, CLAIMERS, 'e2e_c'), await registerUsers(url, CLAIMERS, 'e2e_t')];
    // Every claimer (and target) is one device: the claimers are also the 50-device group.
    const deviceIds = await mapLimited([...claimers, ...targets], 8, async (user, index) => {
        const input = uploadInput(generateDeviceKeys(), index >= CLAIMERS ? KEYS_PER_TARGET : 0);
        return (await postGraphQL(url, UPLOAD, { input }, user.accessToken)).uploadDeviceKeys.id as string;
    });
    const memberDevices = deviceIds.slice(0, CLAIMERS);

    const run = (label: string, senders: SenderSpec[], windowMs: number) => measure(load, label, { url, senders, warmUpMs: WARM_UP_MS, durationMs: windowMs });
    const keysBefore = await prisma.oneTimePreKey.count();
    const claims = await run('preKeyBundles (1 device, claims a key)', claimers.map((c, i) => ({ token: c.accessToken, body: body(BUNDLES, { u: targets[i]!.userId }) })), CLAIM_WINDOW_MS);
    const keysClaimed = keysBefore - (await prisma.oneTimePreKey.count());
    const drained = await prisma.device.count({ where: { userId: { in: targets.map((t) => t.userId) }, oneTimePreKeys: { none: {} } } });
    const reads = await run('user(id:) { id }, signed in', claimers.map((c, i) => ({ token: c.accessToken, body: body('query ($u: ID!) { user(id: $u) { id } }', { u: targets[i]!.userId }) })), CLAIM_WINDOW_MS);

    const { encrypted, plain } = await groups(url, claimers[0]!, claimers);
    const envelopes = (from: number) =>
      memberDevices.filter((_, i) => i !== from).map((deviceId) => ({ deviceId, type: 'MESSAGE', ciphertext: randomBytes(ENVELOPE_BYTES).toString('base64') }));
    const envelopesBefore = await prisma.messageEnvelope.count();
    const encryptedSends = await run(
      `sendEncryptedMessage, ${CLAIMERS - 1} envelopes of ${ENVELOPE_BYTES} B`,
      claimers.map((c, i) => ({
        token: c.accessToken,
        body: body(SEND_ENCRYPTED, { input: { chatId: encrypted, kind: 'TEXT', clientMessageId: `e-${i}-${SEQUENCE_PLACEHOLDER}`, envelopes: envelopes(i) } }),
      })),
      SEND_WINDOW_MS,
    );
    const envelopesStored = (await prisma.messageEnvelope.count()) - envelopesBefore;
    const plainSends = await run(
      `sendMessage, ${ENVELOPE_BYTES} characters, same members`,
      claimers.map((c, i) => ({
        token: c.accessToken,
        body: body(SEND_MESSAGE_RECEIPT, { input: { chatId: plain, kind: 'TEXT', clientMessageId: `p-${i}-${SEQUENCE_PLACEHOLDER}`, text: 'x'.repeat(ENVELOPE_BYTES) } }),
      })),
      SEND_WINDOW_MS,
    );

    const rows: Row[] = [
      { ...claims, extra: `${fixed(keysClaimed / ((WARM_UP_MS + CLAIM_WINDOW_MS) / 1_000), 0)} keys/s` },
      reads,
      { ...encryptedSends, extra: `${fixed(envelopesStored / ((WARM_UP_MS + SEND_WINDOW_MS) / 1_000), 0)} envelopes/s` },
      plainSends,
    ];
    console.log(
      table(
        ['', 'ok/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU ms/ok', 'client CPU ms/ok', 'host %', 'also'],
        rows.map(({ label, summary, extra, hostBusy, serverCpuMs }) => [
          label,
          fixed(okPerSecond(summary), 0),
          fixed(summary.latencyMs.p50),
          fixed(summary.latencyMs.p99),
          fixed(summary.latencyMs.max),
          fixed(serverCpuMs / Math.max(1, countOf(summary.codes, 'OK')), 2),
          fixed(summary.clientCpuMs / Math.max(1, countOf(summary.codes, 'OK')), 2),
          fixed(hostBusy * 100, 0),
          extra ?? '',
        ]),
      ),
    );
    for (const { label, summary } of rows) {
      const other = describeCounts(summary.codes, ['OK']);
      if (other) console.log(`${label}: ${other} of ${totalOf(summary.codes)}`);
    }
    console.log(`keys: ${keysClaimed} one-time pre-keys claimed (warm-up included), each deleted as it was handed out; ${drained} of ${CLAIMERS} targets ran out (their later calls got null)`);
    console.log(`sendEncryptedMessage / sendMessage ok/s: x${fixed(okPerSecond(encryptedSends.summary) / okPerSecond(plainSends.summary), 2)}`);
  } finally {
    await load.close();
    await app.stop();
  }
}

/** An encrypted and a plaintext group of the same members, made by `owner`. */
async function groups(url: string, owner: RegisteredUser, members: RegisteredUser[]) {
  const memberIds = members.filter((m) => m !== owner).map((m) => m.userId);
  const create = async (encrypted: boolean) =>
    (await postGraphQL(url, CREATE_CHAT, { input: { kind: 'GROUP', title: encrypted ? 'e2e bench' : 'plain bench', memberIds, encrypted } }, owner.accessToken)).createChat.id as string;
  return { encrypted: await create(true), plain: await create(false) };
}

/** One closed-loop window, with how busy the whole machine was during it (others' load included). */
async function measure(load: LoadProcess, label: string, spec: Parameters<LoadProcess['run']>[0]): Promise<Row> {
  let before = sampleHostCpu();
  let cpuBefore = process.cpuUsage();
  let hostBusy = Number.NaN;
  let serverCpuMs = Number.NaN;
  const summary = await load.run(spec, {
    onStart: () => {
      before = sampleHostCpu();
      cpuBefore = process.cpuUsage();
    },
    onEnd: () => {
      hostBusy = hostBusyShare(before, sampleHostCpu());
      const cpu = process.cpuUsage(cpuBefore);
      serverCpuMs = (cpu.user + cpu.system) / 1_000;
    },
  });
  return { label, summary, hostBusy, serverCpuMs };
}
