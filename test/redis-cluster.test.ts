// Two API instances on a real three-master Redis Cluster (REDIS_CLUSTER_NODES): the multi-instance
// scenarios of test/cluster.test.ts (events across instances, catch-up, presence, typing, logout,
// rate limits, push jobs through a BullMQ worker), the same bodies as on one Redis; then what only a
// cluster has: channels spread over masters, hash-tagged keys, a slot moved during a message stream
// (resharding) and a master killed during one, with nothing lost or duplicated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterNodesOf, slotPrefix } from '../src/redis/connection.ts';
import { createChat, registerUser, sendText, testConfig, type TestUser } from './support/helpers.ts';
import { multiInstanceScenarios, startInstances, type Instances } from './support/multi-instance.ts';
import { MESSAGE_EVENTS } from './support/operations.ts';
import { haveBinary } from './support/processes.ts';
import { startRedisCluster, type RedisClusterProcesses } from './support/redis-cluster.ts';
import { subscribe, type Subscription } from './support/ws-helpers.ts';

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
  let instances: Instances;

  beforeAll(async () => {
    cluster = await startRedisCluster(FIRST_PORT, FIRST_BUS_PORT);
    instances = await startInstances({ REDIS_CLUSTER_NODES: cluster.nodes });
  }, 90_000);

  afterAll(async () => {
    await instances?.stop();
    await cluster?.stop();
  });

  describe('the multi-instance scenarios', () => {
    multiInstanceScenarios(() => instances);
  });

  const open = (index: number, user: TestUser) => instances.sockets.connect(instances.urls[index]!, user.accessToken);
  const chatChannel = (chatId: string) => `${instances.prefix}chat:${chatId}`;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Subscribers of a sharded channel on one node, waiting (bounded) until there are `atLeast`. */
  async function shardSubscribers(port: number, channel: string, atLeast = 0, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const count = Number(((await cluster.node(port).pubsub('SHARDNUMSUB', channel)) as [string, number])[1]);
      if (count >= atLeast) return count;
      if (Date.now() > deadline) throw new Error(`${channel} has ${count} subscribers on :${port} after ${timeoutMs} ms, expected ${atLeast}`);
      await sleep(50);
    }
  }

  /** Every seq of `stream` until it has `count`, each within `timeoutMs`; a clear error naming what came if one does not. */
  async function seqsOf(stream: Subscription, count: number, timeoutMs = 15_000) {
    const seqs: number[] = [];
    while (seqs.length < count) {
      const next = await stream.next(timeoutMs).catch((error: Error) => {
        throw new Error(`after ${seqs.length} of ${count} events (${seqs.join(',')}): ${error.message}`);
      });
      seqs.push(next.data!.messageEvents.seq);
    }
    return seqs;
  }

  it('puts each chat on a sharded channel of the master owning its slot, spread across masters', async () => {
    const { apps, prefix } = instances;
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chats = await Promise.all(Array.from({ length: 6 }, (_, index) => createChat(apps[0]!, alice, { kind: 'GROUP', title: `c${index}`, memberIds: [bob.id] })));
    const connection = open(0, bob);
    const streams = chats.map((chatId) => subscribe(connection, MESSAGE_EVENTS, { chatId }));
    await instances.untilSubscribed(chats.map((chatId) => `chat:${chatId}`));
    for (const [index, chatId] of chats.entries()) await sendText(apps[1]!, alice, chatId, `hello ${index}`);
    for (const [index, stream] of streams.entries()) expect((await stream.next()).data!.messageEvents.message.text).toBe(`hello ${index}`);

    const masters = new Set<number>();
    for (const port of cluster.ports) {
      const node = cluster.node(port);
      const sharded = (await node.pubsub('SHARDCHANNELS', `${prefix}*`)) as string[];
      if (sharded.some((channel) => chats.some((chatId) => channel.includes(chatId)))) masters.add(port);
      expect(await node.pubsub('CHANNELS', `${prefix}*`)).toEqual([]);
    }
    expect(masters.size).toBeGreaterThanOrEqual(2);
  });

  it('keeps presence keys and BullMQ keys under {hash tags}: each script and queue in one slot', async () => {
    const { apps, prefix, queuePrefix } = instances;
    const user = await registerUser(apps[0]!);
    await apps[0]!.services.presence.connect(user.id);
    expect([...(await apps[1]!.services.presence.onlineUserIds([user.id]))]).toEqual([user.id]);
    const keysOn = async (pattern: string) => (await Promise.all(cluster.ports.map((port) => cluster.node(port).keys(pattern)))).flat();
    expect((await keysOn(`{${prefix}}*`)).length).toBeGreaterThan(0);
    await apps[0]!.services.presence.disconnect(user.id);
    // Every send queues a fan-out job (the scenarios above sent many).
    expect((await keysOn(`{${queuePrefix}}:*`)).length).toBeGreaterThan(0);
    expect(await keysOn(`${queuePrefix}:*`)).toEqual([]);
  });

  it('resubscribes on the new master when the slot of a chat channel moves during a stream, losing and duplicating nothing', async () => {
    const { apps } = instances;
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'reshard', memberIds: [bob.id] });
    const stream = subscribe(open(0, bob), MESSAGE_EVENTS, { chatId });
    await instances.untilSubscribed([`chat:${chatId}`]);
    const sent: number[] = [];
    let moved: { from: number; to: number } | undefined;
    for (let index = 0; index < 30; index++) {
      if (index === 10) moved = await cluster.moveSlot(chatChannel(chatId));
      sent.push((await sendText(apps[1]!, alice, chatId, `r${index}`)).seq);
      await sleep(30);
    }
    expect(await cluster.masterOf(chatChannel(chatId))).toBe(moved!.to);
    // The old master let go of the channel (its `sunsubscribe` push); the instance subscribed on the new one.
    expect(await shardSubscribers(moved!.from, chatChannel(chatId))).toBe(0);
    expect(await shardSubscribers(moved!.to, chatChannel(chatId), 1)).toBe(1);
    expect(await seqsOf(stream, sent.length)).toEqual(sent);
    // Live again on the new master: one more arrives as an event.
    const after = (await sendText(apps[1]!, alice, chatId, 'after the move')).seq;
    expect(await seqsOf(stream, 1)).toEqual([after]);
    expect(await stream.nothingWithin(300)).toBe(true);
  }, 60_000);

  it('subscribes a chat whose slot has just moved: an SSUBSCRIBE to the old master (MOVED) is retried on the new one', async () => {
    const { apps } = instances;
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'moved first', memberIds: [bob.id] });
    // The instances' slot maps are refreshed every second: right after the move, theirs still name the old master.
    const moved = await cluster.moveSlot(chatChannel(chatId));
    const stream = subscribe(open(0, bob), MESSAGE_EVENTS, { chatId });
    expect(await shardSubscribers(moved.to, chatChannel(chatId), 1)).toBe(1);
    const sent = (await sendText(apps[1]!, alice, chatId, 'after a move')).seq;
    expect(await seqsOf(stream, 1)).toEqual([sent]);
  });

  it('loses and duplicates nothing when the master of the chat channel is killed during a stream', async () => {
    const { apps } = instances;
    const [alice, bob] = [await registerUser(apps[0]!), await registerUser(apps[0]!)];
    const chatId = await createChat(apps[0]!, alice, { kind: 'GROUP', title: 'failover', memberIds: [bob.id] });
    const stream = subscribe(open(0, bob), MESSAGE_EVENTS, { chatId });
    await instances.untilSubscribed([`chat:${chatId}`]);
    const master = await cluster.masterOf(chatChannel(chatId));
    const sent: number[] = [];
    for (let index = 0; index < 30; index++) {
      if (index === 10) await cluster.kill(master);
      sent.push((await sendText(apps[1]!, alice, chatId, `f${index}`)).seq);
      await sleep(50);
    }
    await cluster.healthy();
    // The killed master's replica owns the channel's slot now.
    expect(await cluster.masterOf(chatChannel(chatId))).not.toBe(master);
    // One more after the failover: any event lost meanwhile shows as a gap and is read from the database.
    sent.push((await sendText(apps[1]!, alice, chatId, 'after')).seq);
    expect(await seqsOf(stream, sent.length)).toEqual(sent);
    expect(await stream.nothingWithin(300)).toBe(true);

    const replay = subscribe(open(1, bob), MESSAGE_EVENTS, { chatId, sinceSeq: 0 });
    expect(await seqsOf(replay, sent.length, 10_000)).toEqual(sent);
    await cluster.restart(master);
    await cluster.healthy();
  }, 60_000);
});
