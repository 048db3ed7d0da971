// The capacity model (bench/capacity-model.ts) against a real run: four API processes over a local
// three-master Redis Cluster (sharded pub/sub) and the bench PostgreSQL, one group chat whose
// members are subscribed across all four, and one closed-loop sender per instance. Measured sends/s,
// deliveries/s and API CPU per message are printed beside the model's figures, with the error.
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { apiInstance, type ApiInstance } from '../test/support/faults.ts';
import { ADD_CHAT_MEMBERS, CREATE_CHAT, MESSAGE_EVENTS, SEND_MESSAGE_RECEIPT } from '../test/support/operations.ts';
import { startRedisCluster } from '../test/support/redis-cluster.ts';
import { connect, subscribe, type Connection } from '../test/support/ws-helpers.ts';
import { COSTS, sendsPerSecondOn } from './capacity-model.ts';
import { postGraphQL } from './graphql-load.ts';
import { hostBusyShare, pidsNamed, processesCpuMs, sampleHostCpu } from './host-cpu.ts';
import { BENCH_MESSAGE_KEY, BENCH_TEXT, registerUsers, type BenchContext } from './setup.ts';
import { fixed, sleep, table } from './stats.ts';

/** FOUR_INSTANCES_COUNT runs it on fewer (or more) API processes: the per-instance term of the model is fitted from 1 and 2. */
const INSTANCES = Number(process.env.FOUR_INSTANCES_COUNT ?? 4);
const MEMBERS = Number(process.env.FOUR_INSTANCES_MEMBERS ?? 200);
const WARM_UP_MS = 3_000;
const MEASURE_MS = 15_000;
const IDLE_MS = 5_000;
// Below the ephemeral range (32768-60999), and apart from the tests' 17000-17999.
const CLUSTER_FIRST_PORT = 18_000;
const CLUSTER_FIRST_BUS_PORT = 18_010;

export async function runFourInstances({ databaseUrl }: BenchContext): Promise<void> {
  const cluster = await startRedisCluster(CLUSTER_FIRST_PORT, CLUSTER_FIRST_BUS_PORT);
  const instances: ApiInstance[] = [];
  const connections: Connection[] = [];
  try {
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_CLUSTER_NODES: cluster.nodes,
      JWT_SECRET: 'bench-secret-that-is-long-enough-for-hs256-0123456789',
      MESSAGE_ENCRYPTION_KEY: BENCH_MESSAGE_KEY,
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'error',
    };
    // One at a time: each applies migrations on start.
    for (let index = 0; index < INSTANCES; index++) instances.push(await apiInstance(env));
    const urls = instances.map((instance) => instance.url);
    const perInstance = Math.ceil((MEMBERS + 1) / INSTANCES);
    const users = (await Promise.all(urls.map((url, index) => registerUsers(url, perInstance, `four${index}`)))).flat().slice(0, MEMBERS + 1);
    const [owner, ...members] = users;
    const { createChat } = await postGraphQL(urls[0]!, CREATE_CHAT, { input: { kind: 'GROUP', title: 'four instances', memberIds: [members[0]!.userId] } }, owner!.accessToken);
    const chatId = createChat.id as string;
    for (let from = 1; from < members.length; from += 100) {
      await postGraphQL(urls[0]!, ADD_CHAT_MEMBERS, { chatId, userIds: members.slice(from, from + 100).map((member) => member.userId) }, owner!.accessToken);
    }

    // Every member subscribed, spread evenly over the four instances.
    const streams = members.map((member, index) => {
      const connection = connect(urls[index % INSTANCES]!, member.accessToken);
      connections.push(connection);
      return subscribe(connection, MESSAGE_EVENTS, { chatId });
    });
    const delivered = () => streams.reduce((sum, stream) => sum + stream.results.length, 0);
    await Promise.all(connections.map((connection) => connection.connected));
    await sleep(1_000);
    // What the four processes burn with sockets open and nothing sent (heartbeats, slot refreshes, pings).
    const apiPids = instances.map((instance) => instance.pid()!).filter(Boolean);
    const idleBefore = { at: performance.now(), api: processesCpuMs(apiPids) };
    await sleep(IDLE_MS);
    const idleApiMsPerS = (processesCpuMs(apiPids) - idleBefore.api) / ((performance.now() - idleBefore.at) / 1000);

    let sent = 0;
    let measuring = true;
    const senders = urls.map(async (url) => {
      while (measuring) {
        await postGraphQL(url, SEND_MESSAGE_RECEIPT, { input: { chatId, kind: 'TEXT', text: BENCH_TEXT, clientMessageId: randomUUID() } }, owner!.accessToken);
        sent++;
      }
    });
    await sleep(WARM_UP_MS);

    const pgPids = pidsNamed(['postgres']);
    const redisPids = pidsNamed(['redis-server']);
    const sample = () => ({
      at: performance.now(),
      sent,
      delivered: delivered(),
      api: processesCpuMs(apiPids),
      pg: processesCpuMs(pgPids),
      redis: processesCpuMs(redisPids),
      client: process.cpuUsage(),
      host: sampleHostCpu(),
    });
    const before = sample();
    await sleep(MEASURE_MS);
    const after = sample();
    measuring = false;
    await Promise.all(senders);

    const seconds = (after.at - before.at) / 1000;
    const messages = after.sent - before.sent;
    const deliveries = after.delivered - before.delivered;
    const clientMs = (after.client.user + after.client.system - before.client.user - before.client.system) / 1000;
    const apiMs = after.api - before.api;
    const pgMs = after.pg - before.pg;
    const redisMs = after.redis - before.redis;
    const hostBusy = hostBusyShare(before.host, after.host);
    const oursShare = (apiMs + pgMs + redisMs + clientMs) / (seconds * 1000 * availableParallelism());
    const othersShare = Math.max(0, hostBusy - oursShare);
    const clientUsPerDelivery = (clientMs * 1000) / Math.max(1, deliveries);

    const modelApiMs = COSTS.apiSendMs + INSTANCES * COSTS.apiInstanceEventMs + (MEMBERS * COSTS.apiDeliveryUs) / 1000;
    const measuredApiMs = apiMs / Math.max(1, messages);
    const aboveIdleApiMs = (apiMs - idleApiMsPerS * seconds) / Math.max(1, messages);
    const cores = availableParallelism() * (1 - othersShare);
    const predicted = sendsPerSecondOn(cores, MEMBERS, clientUsPerDelivery, INSTANCES);
    const measuredRate = messages / seconds;

    console.log(`${INSTANCES} API processes (WORKER_THREADS=1, push off) over a 3-master Redis Cluster (+3 replicas), one GROUP chat of ${MEMBERS + 1}`);
    console.log(`${MEMBERS} members subscribed (messageEvents, graphql-ws), ${fixed(MEMBERS / INSTANCES, 0)} per instance; ${INSTANCES} closed-loop senders (one per instance, HTTP);`);
    console.log(`warm-up ${WARM_UP_MS / 1000} s, measured ${fixed(seconds)} s; CPU from /proc (all postgres and redis-server processes on the machine counted)`);
    console.log(
      table(
        ['sends/s', 'deliveries/s', 'API CPU ms/msg', 'PG CPU ms/msg', 'Redis CPU ms/msg', 'client µs/delivery', 'host busy %', 'others %'],
        [[fixed(measuredRate), fixed(deliveries / seconds, 0), fixed(measuredApiMs, 2), fixed(pgMs / Math.max(1, messages), 2), fixed(redisMs / Math.max(1, messages), 3), fixed(clientUsPerDelivery, 1), fixed(hostBusy * 100, 0), fixed(othersShare * 100, 0)]],
      ),
    );
    console.log(`API processes idle (sockets open, nothing sent): ${fixed(idleApiMsPerS)} ms CPU per second, all ${INSTANCES}`);
    console.log(
      `model, API CPU per message: ${COSTS.apiSendMs} + ${INSTANCES} x ${COSTS.apiInstanceEventMs} + ${MEMBERS} x ${COSTS.apiDeliveryUs} µs = ${fixed(modelApiMs, 2)} ms; measured ${fixed(measuredApiMs, 2)} ms (error ${fixed((measuredApiMs / modelApiMs - 1) * 100, 0)}%), above idle ${fixed(aboveIdleApiMs, 2)} ms (error ${fixed((aboveIdleApiMs / modelApiMs - 1) * 100, 0)}%)`,
    );
    console.log(
      `model, sends/s on the ${fixed(cores, 2)} cores not taken by other work (client CPU per delivery as measured): ${fixed(predicted)}; measured ${fixed(measuredRate)} (error ${fixed((measuredRate / predicted - 1) * 100, 0)}%)`,
    );
  } finally {
    await Promise.allSettled(connections.map((connection) => connection.dispose()));
    await Promise.allSettled(instances.map((instance) => instance.close()));
    await cluster.stop();
  }
}
