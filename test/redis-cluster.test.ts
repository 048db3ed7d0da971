// Two API instances on a real three-master Redis Cluster (REDIS_CLUSTER_NODES): events across
// instances on sharded pub/sub, catch-up, presence, push jobs and rate limits as on one Redis; then
// a master killed during a message stream, with nothing lost or duplicated.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { createBullQueue, startBullWorker } from '../src/notifications/queue.ts';
import { clusterNodesOf, clusterTarget, slotPrefix } from '../src/redis/connection.ts';
import type { App } from '../src/server/app.ts';
import { codeOf, createChat, gql, onlyRateLimits, registerUser, sendText, startTestApp, testConfig, type TestUser } from './support/helpers.ts';
import { MESSAGE_EVENTS } from './support/operations.ts';
import { haveBinary } from './support/processes.ts';
import { startRedisCluster, type RedisClusterProcesses } from './support/redis-cluster.ts';
import { connect, settle, subscribe, type Connection } from './support/ws-helpers.ts';

/**
 * Fixed ports below Linux's ephemeral range (32768-60999) and below unusedPort's 20000-31999: one in
 * that range can be held by an outgoing connection of a test running in parallel, and a node whose
 * port or cluster-bus port is taken exits, so the cluster cannot form or fail over. 17100-17199 are
 * PgBouncer's and the replica test's.
 */
const FIRST_PORT = 17_000;
/** The nodes' cluster bus ports. */
const FIRST_BUS_PORT = 17_010;

describe('REDIS_CLUSTER_NODES', () => {
  it('becomes a cluster target, with hash-tagged prefixes, and excludes REDIS_URL', () => {
    const config = testConfig({ REDIS_CLUSTER_NODES: 'redis-0:6379,redis-1:6379' });
    expect(clusterNodesOf(config.redisUrl!)).toEqual([
      { host: 'redis-0', port: 6379 },
      { host: 'redis-1', port: 6379 },
    ]);
    expect(slotPrefix(config.redisUrl, 'kocmoc')).toBe('{kocmoc}');
    expect(slotPrefix(config.redisUrl, '{already}:x')).toBe('{already}:x');
    expect(slotPrefix('redis://127.0.0.1:6379', 'kocmoc')).toBe('kocmoc');
    expect(() => testConfig({ REDIS_CLUSTER_NODES: 'redis-0' })).toThrow(/REDIS_CLUSTER_NODES: expected host:port/);
    expect(() => testConfig({ REDIS_CLUSTER_NODES: 'redis-0:6379', REDIS_URL: 'redis://x:6379' })).toThrow(/either it or REDIS_URL/);
  });
});
const enabled = haveBinary('redis-server', 'redis-server') && haveBinary('redis-cli', 'redis-tools');

describe.skipIf(!enabled)('on a Redis Cluster (3 masters, 3 replicas)', () => {
  let cluster: RedisClusterProcesses;
  let apps: App[] = [];
  let urls: string[] = [];
  const connections: Connection[] = [];
  const prefix = `kocmoc-test:${randomUUID()}:`;

  beforeAll(async () => {
    cluster = await startRedisCluster(FIRST_PORT, FIRST_BUS_PORT);
    const env = { REDIS_CLUSTER_NODES: cluster.nodes, JOB_QUEUE_PREFIX: `kocmoc-test-${randomUUID()}`, ...onlyRateLimits({ RATE_LIMIT_SEARCH: '2/1h' }) };
    apps = await Promise.all([0, 1].map(() => startTestApp(env, { channelPrefix: prefix, presence: { keyPrefix: prefix }, rateLimitKeyPrefix: `${prefix}rl:` })));
    urls = await Promise.all(apps.map(async (app) => (await app.start()).url));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(connections.map((connection) => connection.dispose()));
    await Promise.all(apps.map((app) => app.stop()));
    await cluster?.stop();
  });

  const open = (index: number, user: TestUser) => {
    const connection = connect(urls[index]!, user.accessToken);
    connections.push(connection);
    return connection;
  };

  it('delivers a message sent on one instance to a subscriber on the other, over sharded pub/sub spread across masters', async () => {
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chats = await Promise.all(Array.from({ length: 6 }, (_, index) => createChat(apps[0]!, alice, { kind: 'GROUP', title: `c${index}`, memberIds: [bob.id] })));
    const connection = open(0, bob);
    const streams = chats.map((chatId) => subscribe(connection, MESSAGE_EVENTS, { chatId }));
    await settle();
    for (const [index, chatId] of chats.entries()) await sendText(apps[1]!, alice, chatId, `hello ${index}`);
    for (const [index, stream] of streams.entries()) expect((await stream.next()).data!.messageEvents.message.text).toBe(`hello ${index}`);

    // Each chat's channel is a sharded channel on the master owning its slot; none is a classic one.
    const masters = new Set<number>();
    for (const port of cluster.ports) {
      const node = cluster.node(port);
      const sharded = (await node.pubsub('SHARDCHANNELS', `${prefix}*`)) as string[];
      if (sharded.some((channel) => chats.some((chatId) => channel.includes(chatId)))) masters.add(port);
      expect(await node.pubsub('CHANNELS', `${prefix}*`)).toEqual([]);
    }
    expect(masters.size).toBeGreaterThanOrEqual(2);
  });

  it('catches up by sinceSeq on the other instance', async () => {
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'catch-up', memberIds: [bob.id] });
    const sent = [];
    for (let index = 0; index < 5; index++) sent.push(await sendText(apps[0]!, alice, chatId, `m${index}`));
    const stream = subscribe(open(1, bob), MESSAGE_EVENTS, { chatId, sinceSeq: sent[1]!.seq });
    const seqs = [];
    for (let index = 0; index < 3; index++) seqs.push((await stream.next()).data!.messageEvents.seq);
    expect(seqs).toEqual(sent.slice(2).map((message) => message.seq));
  });

  it('shares presence between the instances (hash-tagged keys: one slot per script)', async () => {
    const user = await registerUser(apps[0]!);
    await apps[0]!.services.presence.connect(user.id);
    expect([...(await apps[1]!.services.presence.onlineUserIds([user.id]))]).toEqual([user.id]);
    const keys = await Promise.all(cluster.ports.map((port) => cluster.node(port).keys(`{${prefix}}*`)));
    expect(keys.flat().length).toBeGreaterThan(0);
    await apps[0]!.services.presence.disconnect(user.id);
  });

  it('counts a rate limit across both instances', async () => {
    const user = await registerUser(apps[0]!);
    const search = (index: number) => gql(apps[index]!, '{ searchUsers(query: "zz") { edges { node { id } } } }', {}, { token: user.accessToken });
    expect((await search(0)).errors).toBeUndefined();
    expect((await search(1)).errors).toBeUndefined();
    expect(codeOf(await search(0))).toBe('RATE_LIMITED');
  });

  it('runs BullMQ jobs on the cluster under a {hash-tagged} prefix', async () => {
    const target = clusterTarget(cluster.nodes);
    const queuePrefix = `kocmoc-test-${randomUUID()}`;
    const logger = createLogger('silent');
    const queue = createBullQueue(target, logger, queuePrefix);
    const done: string[] = [];
    const worker = startBullWorker({
      redisUrl: target,
      prefix: queuePrefix,
      logger,
      concurrency: 2,
      lockDurationMs: 5_000,
      process: async (_name, data) => void done.push((data as { messageId: string }).messageId),
    });
    try {
      await queue.add('fan-out', [1, 2, 3].map((n) => ({ id: `job-${n}`, data: { messageId: `m${n}` } })));
      for (let waited = 0; done.length < 3 && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(done.sort()).toEqual(['m1', 'm2', 'm3']);
      const keys = await Promise.all(cluster.ports.map((port) => cluster.node(port).keys(`{${queuePrefix}}:*`)));
      expect(keys.flat().length).toBeGreaterThan(0);
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it('loses and duplicates nothing when the master of the chat channel is killed during a stream', async () => {
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'failover', memberIds: [bob.id] });
    const stream = subscribe(open(0, bob), MESSAGE_EVENTS, { chatId });
    await settle();
    const master = await cluster.masterOf(`${prefix}chat:${chatId}`);
    const sent: number[] = [];
    for (let index = 0; index < 30; index++) {
      if (index === 10) await cluster.kill(master);
      sent.push((await sendText(apps[1]!, alice, chatId, `f${index}`)).seq);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await cluster.healthy();
    // The killed master's replica owns the channel's slot now.
    expect(await cluster.masterOf(`${prefix}chat:${chatId}`)).not.toBe(master);
    // One more after the failover: any event lost meanwhile shows as a gap and is read from the database.
    sent.push((await sendText(apps[1]!, alice, chatId, 'after')).seq);
    const received: number[] = [];
    while (received.length < sent.length) received.push((await stream.next(15_000)).data!.messageEvents.seq);
    expect(received).toEqual(sent);
    expect(await stream.nothingWithin(300)).toBe(true);

    const replay = subscribe(open(1, bob), MESSAGE_EVENTS, { chatId, sinceSeq: 0 });
    const replayed: number[] = [];
    while (replayed.length < sent.length) replayed.push((await replay.next(10_000)).data!.messageEvents.seq);
    expect(replayed).toEqual(sent);
    await cluster.restart(master);
    await cluster.healthy();
  }, 60_000);
});
