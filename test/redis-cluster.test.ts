// Two API instances on a real three-master Redis Cluster (REDIS_CLUSTER_NODES): the multi-instance
// scenarios of test/cluster.test.ts (events across instances, catch-up, presence, typing, logout,
// rate limits, push jobs through a BullMQ worker, a worker killed mid-push), the same bodies as on one
// Redis; then what only a cluster has: channels spread over masters, hash-tagged keys, slots moved
// during a message stream (resharding, by hand and with `redis-cli --cluster reshard`: the chat
// channel's, BullMQ's and presence's) and a master killed during one, with nothing lost or duplicated.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterNodesOf, slotPrefix } from '../src/redis/connection.ts';
import { createLogger } from '../src/logger.ts';
import { startBullWorker } from '../src/notifications/queue.ts';
import { createChat, gql, registerUser, sendText, testConfig, type TestUser } from './support/helpers.ts';
import { multiInstanceScenarios, startInstances, type Instances } from './support/multi-instance.ts';
import { MESSAGE_EVENTS, PRESENCE, REGISTER_PUSH } from './support/operations.ts';
import { haveBinary } from './support/processes.ts';
import { startRedisCluster, type ClusterSlots, type RedisClusterProcesses, type Reshard } from './support/redis-cluster.ts';
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

  it('keeps a stream to subscribers on both instances whole while `redis-cli --cluster reshard` moves the chat channel\'s slot', async () => {
    const { apps } = instances;
    const [alice, bob, carol] = [await registerUser(apps[0]!), await registerUser(apps[0]!), await registerUser(apps[1]!)];
    // The tool moves every slot of the master below the channel's too: of four chats, the one that takes the fewest.
    const chats = await Promise.all(Array.from({ length: 4 }, () => createChat(apps[0]!, alice, { kind: 'GROUP', title: 'redis-cli reshard', memberIds: [bob.id, carol.id] })));
    const costs = await Promise.all(chats.map((id) => cluster.slotsToReshard(chatChannel(id))));
    const chatId = chats[costs.indexOf(Math.min(...costs))]!;
    const streams = [subscribe(open(0, bob), MESSAGE_EVENTS, { chatId }), subscribe(open(1, carol), MESSAGE_EVENTS, { chatId })];
    await instances.untilSubscribed([`chat:${chatId}`]);
    const from = await cluster.masterOf(chatChannel(chatId));
    expect(await shardSubscribers(from, chatChannel(chatId), 2)).toBe(2);
    const sent: number[] = [];
    const send = async () => sent.push((await sendText(apps[sent.length % 2]!, alice, chatId, `t${sent.length}`)).seq);
    for (let index = 0; index < 10; index++) await send();
    // The tool moves the slots (hundreds, for seconds) while messages go on through both instances.
    let resharded: Reshard | undefined;
    const resharding = cluster.reshard(chatChannel(chatId)).then((moved) => (resharded = moved));
    while (!resharded && sent.length < 1_000) {
      await send();
      await sleep(30);
    }
    await resharding;
    expect(resharded!.from).toBe(from);
    // Every node's slot map names the new owner of the channel's slot.
    for (const port of cluster.ports) {
      const node = cluster.node(port);
      expect(await node.cluster('KEYSLOT', chatChannel(chatId))).toBe(resharded!.slot);
      const shards = (await node.cluster('SLOTS')) as unknown as ClusterSlots;
      expect(shards.find(([first, last]) => resharded!.slot >= first && resharded!.slot <= last)?.[2][1]).toBe(resharded!.to);
    }
    expect(await shardSubscribers(from, chatChannel(chatId))).toBe(0);
    expect(await shardSubscribers(resharded!.to, chatChannel(chatId), 2)).toBe(2);
    for (let index = 0; index < 10; index++) await send();
    for (const stream of streams) expect(await seqsOf(stream, sent.length)).toEqual(sent);
    for (const stream of streams) expect(await stream.nothingWithin(300)).toBe(true);
    // Catch-up from the database by sinceSeq agrees with what came live.
    const replay = subscribe(open(1, bob), MESSAGE_EVENTS, { chatId, sinceSeq: 0 });
    expect(await seqsOf(replay, sent.length, 10_000)).toEqual(sent);
  }, 120_000);

  it('keeps presence and push jobs working while `redis-cli --cluster reshard` moves their slots, keys and all', async () => {
    const { apps, prefix, queuePrefix, push, redisUrl } = instances;
    const [alice, bob, carol] = [await registerUser(apps[0]!), await registerUser(apps[0]!), await registerUser(apps[0]!)];
    await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [bob.id] });
    const watching = subscribe(open(0, alice), PRESENCE);
    await instances.untilSubscribed([`presence:${bob.id}`]);
    const bobOnline = open(1, bob);
    await bobOnline.connected;
    expect((await watching.next()).data!.presence).toMatchObject({ user: { id: bob.id }, status: 'ONLINE' });
    const device = push.device();
    expect((await gql(apps[0]!, REGISTER_PUSH, { input: { endpoint: device.endpoint, keys: device.keys } }, { token: carol.accessToken })).errors).toBeUndefined();
    const toCarol = await createChat(apps[0]!, alice, { kind: 'DIRECT', memberIds: [carol.id] });
    const worker = startBullWorker({ redisUrl, prefix: queuePrefix, process: apps[1]!.notifications.process, logger: createLogger('silent'), concurrency: 2, lockDurationMs: 5_000 });
    const texts: string[] = [];
    try {
      // One push at a time, each waited for (so none collapses into the next), while the queue's slot moves.
      let moved = false;
      const queueMove = cluster.reshard(`{${queuePrefix}}`).finally(() => (moved = true));
      while (!moved && texts.length < 200) {
        texts.push(`p${texts.length}`);
        await sendText(apps[texts.length % 2]!, alice, toCarol, texts.at(-1)!);
        await push.waitFor(device, texts.length, 15_000);
      }
      // Each slot's keys went along to the new master (checked before the next move, which can take the slot on).
      const movedKeys = async (move: Reshard, pattern: string) => {
        expect(await cluster.node(move.from).keys(pattern)).toEqual([]);
        expect((await cluster.node(move.to).keys(pattern)).length).toBeGreaterThan(0);
      };
      await movedKeys(await queueMove, `{${queuePrefix}}:*`);
      await movedKeys(await cluster.reshard(`{${prefix}}`), `{${prefix}}*`);
      texts.push('after both moves');
      await sendText(apps[0]!, alice, toCarol, texts.at(-1)!);
      await push.waitFor(device, texts.length, 15_000);
      await sleep(500);
      expect(device.accepted.map((payload) => payload.body)).toEqual(texts);
    } finally {
      await worker.close();
    }
    // Bob stayed online throughout, seen from either instance; going offline still reaches alice.
    expect(await watching.nothingWithin(300)).toBe(true);
    for (const app of apps) expect([...(await app.services.presence.onlineUserIds([bob.id]))]).toEqual([bob.id]);
    await bobOnline.dispose();
    expect((await watching.next(5_000)).data!.presence).toMatchObject({ user: { id: bob.id }, status: 'OFFLINE' });
  }, 120_000);

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
