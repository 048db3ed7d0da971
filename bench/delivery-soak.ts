// Soak of issue #22's faults: the fault test's run (test/support/delivery-scenario.ts) until
// 100,000 messages are acknowledged (SOAK_MESSAGES for another count), its faults round after
// round: instance 2 killed with SIGKILL and started again, Redis killed and restarted, PostgreSQL
// restarted, and a gap fill that fails past FEED_GAP_TIMEOUT_MS. Prints what the subscribers
// counted by seq (lost, duplicated, out of order, completed by the server) and the delivery delay
// through each fault, by the phase in which each message was first sent.
//
// PostgreSQL here is an embedded server of the bench's own (its data in a temporary directory),
// so its restart is a real one: a fast shutdown (SIGINT, as `pg_ctl stop -m fast`) and a start.
// Instance 1 runs in this process with the clients (10 group chats of 6, two senders each, every
// member subscribed); instance 2 is `npm start` in a child process.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { applyMigrations } from '../src/db/migrate/index.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded.ts';
import { buildApp, type App } from '../src/server/app.ts';
import { runDeliveryScenario, type DeliveryReport } from '../test/support/delivery-scenario.ts';
import { apiInstance, databaseOutages, startRedisServer, type ApiInstance, type RedisServer } from '../test/support/faults.ts';
import { unusedPort } from '../test/support/ports.ts';
import { hostBusyShare, sampleHostCpu } from './host-cpu.ts';
import { BENCH_MESSAGE_KEY, benchConfig, type BenchContext } from './setup.ts';
import { fixed, percentile, table } from './stats.ts';
import { createBenchUsers, createGroupChat } from './ws-fixtures.ts';

const MESSAGES = Number(process.env.SOAK_MESSAGES ?? 100_000);
const CHATS = 10;
const MEMBERS = 6;
const GAP_TIMEOUT_MS = 5_000;

export async function runDeliverySoak(_context: BenchContext): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'kocmoc-soak-pg-'));
  // As root the embedded server runs as `postgres`, which must enter the directory.
  chmodSync(dataDir, 0o755);
  const pgOptions = { dataDir: join(dataDir, 'cluster'), port: await unusedPort(), database: 'kocmoc_soak' };
  let postgres: EmbeddedPostgres | undefined;
  let redis: RedisServer | undefined;
  let first: App | undefined;
  let second: ApiInstance | undefined;
  try {
    postgres = await startEmbeddedPostgres(pgOptions);
    const databaseUrl = postgres.url;
    await applyMigrations({ databaseUrl });
    redis = await startRedisServer();
    // A long token lifetime: subscribers resubscribe with the same token for the whole soak. Errors
    // only: every fault makes the instances warn about each request and connection it refuses.
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      PUSH_ENABLED: 'false',
      FEED_GAP_TIMEOUT_MS: String(GAP_TIMEOUT_MS),
      JWT_TTL: '6h',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    };
    first = await buildApp({ config: benchConfig({ ...env, MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY }) });
    const url = (await first.start()).url;
    second = await apiInstance({ ...env, JWT_SECRET: first.services.config.auth.jwtSecret, MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY });

    const users = await createBenchUsers(first, CHATS * MEMBERS, 'soak');
    const chats = [];
    for (let i = 0; i < CHATS; i++) {
      const members = users.slice(i * MEMBERS, (i + 1) * MEMBERS);
      const id = await createGroupChat(first, members.map((member) => member.userId), `Soak ${i}`);
      chats.push({ id, members: members.map((member) => ({ id: member.userId, token: member.accessToken })) });
    }

    console.log(`${CHATS} group chats of ${MEMBERS}, 2 senders each (clientMessageId, retried on the other instance until acknowledged),`);
    console.log(`every member subscribed to messageEvents(chatId, sinceSeq), dropping its socket every 12 s on average (5 drops/s in all)`);
    console.log(`and resuming with sinceSeq on a random instance; FEED_GAP_TIMEOUT_MS=${GAP_TIMEOUT_MS}; until ${MESSAGES} messages are acknowledged`);
    const restarts: number[] = [];
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const [hostBefore, cpuBefore, loadBefore] = [sampleHostCpu(), process.cpuUsage(), loadavg()];
    const report = await runDeliveryScenario({
      first: { app: first, url },
      second,
      redis,
      databaseFault: {
        name: 'PostgreSQL restarted',
        run: async () => {
          const down = Date.now();
          await postgres!.stop();
          postgres = await startEmbeddedPostgres(pgOptions);
          restarts.push(Date.now() - down);
        },
      },
      outage: await databaseOutages(databaseUrl),
      gapTimeoutMs: GAP_TIMEOUT_MS,
      chats,
      sendersPerChat: 2,
      senderPauseMs: 0,
      until: { messages: MESSAGES },
      settleMs: 5_000,
      dropEveryMs: 12_000,
      drainTimeoutMs: 120_000,
      log: (line) => console.log(line),
    });
    loopDelay.disable();
    const cpu = process.cpuUsage(cpuBefore);
    console.log(`PostgreSQL restarts (stop, then accepting connections again): ${restarts.map((ms) => `${ms} ms`).join(', ')}`);
    console.log(
      `this process (instance 1 and every client): CPU ${fixed((cpu.user + cpu.system) / 1e6, 0)} s in ${fixed(report.durationMs / 1000, 0)} s, ` +
        `event-loop delay p99 ${fixed(loopDelay.percentile(99) / 1e6, 0)} ms; host CPU ${fixed(hostBusyShare(hostBefore, sampleHostCpu()) * 100, 0)}% busy; ` +
        `load average ${loadBefore.map((v) => v.toFixed(1)).join(' ')} before, ${loadavg().map((v) => v.toFixed(1)).join(' ')} after`,
    );
    printReport(report);
  } finally {
    await second?.close();
    await first?.stop();
    await redis?.kill();
    await postgres?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function printReport(report: DeliveryReport) {
  console.log(
    table(
      ['what', 'count'],
      [
        ['messages acknowledged', report.acknowledged],
        ['messages stored (acknowledged + the gap faults’ own)', `${report.stored} (${report.acknowledged} + ${report.gapMessages})`],
        ['deliveries expected (every position, every subscriber)', report.expectedDeliveries],
        ['deliveries', report.delivered],
        ['lost', report.lost],
        ['duplicated', report.duplicated],
        ['out of order', report.outOfOrder],
        ['subscriptions completed by the server', report.completedByServer],
        ['retried sends / answered with another message', `${report.retriedSends} / ${report.mismatchedRetries}`],
        ['socket drops (own) / sockets lost (faults)', `${report.drops} / ${report.lostSockets}`],
        ['subscriptions ended with an error, by code', Object.entries(report.errors).map(([code, n]) => `${code} x${n}`).join(', ') || '-'],
        ['of them UNAVAILABLE in the gap faults’ chat', report.gapFailures],
        ['duration', `${fixed(report.durationMs / 1000, 0)} s`],
      ],
    ),
  );
  console.log('\nby the phase in which each message was first sent: delivery delay (first attempt to the subscriber) and acknowledgement (first attempt to the answer, retries included)');
  console.log(
    table(
      ['phase', 'messages', 'ack p50 ms', 'ack p99 ms', 'deliveries', 'p50 ms', 'p99 ms', 'max ms'],
      report.phases.map((phase) => [
        phase.name,
        phase.ackDelaysMs.length,
        fixed(percentile(phase.ackDelaysMs, 50), 0),
        fixed(percentile(phase.ackDelaysMs, 99), 0),
        phase.deliveries,
        fixed(percentile(phase.delaysMs, 50), 0),
        fixed(percentile(phase.delaysMs, 99), 0),
        fixed(percentile(phase.delaysMs, 100), 0),
      ]),
    ),
  );
}
