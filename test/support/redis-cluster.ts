// A real Redis Cluster on loopback: three masters and a replica each (`redis-server
// --cluster-enabled yes`, joined by `redis-cli --cluster create`), with a node timeout of 1 s so a
// killed master's replica takes over within a few seconds.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { listening } from './ports.ts';

const CREATE_TIMEOUT_MS = 90_000;

/** Runs a command to its end or `timeoutMs` (then SIGKILLed: code null), with its stdout and stderr together. */
function run(command: string, args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export interface RedisClusterProcesses {
  /** `host:port,...` of every node, as REDIS_CLUSTER_NODES takes it. */
  nodes: string;
  ports: number[];
  /** The port of the master that owns `key`'s (or a sharded channel's) slot now. */
  masterOf(key: string): Promise<number>;
  /** SIGKILLs the node on `port`. */
  kill(port: number): Promise<void>;
  /** Starts the node on `port` again (it rejoins from its nodes.conf). */
  restart(port: number): Promise<void>;
  /**
   * Moves the slot of `key` (or a sharded channel) to another master as `redis-cli --cluster
   * reshard` does: IMPORTING on the target, MIGRATING on the source, its keys MIGRATEd, then
   * SETSLOT NODE on every master. Returns the ports of the old and the new owner.
   */
  moveSlot(key: string): Promise<{ from: number; to: number }>;
  /**
   * Moves the slot of `key` (or a sharded channel) to another master with `redis-cli --cluster
   * reshard` itself. The tool moves a source's lowest slots first, so this moves as many as it takes
   * to include `key`'s: every slot of its master up to that one. Waits until every node agrees on
   * the slots (`redis-cli --cluster check`) before, as the tool requires, and after.
   */
  reshard(key: string): Promise<Reshard>;
  /** How many slots `reshard(key)` would move now. */
  slotsToReshard(key: string): Promise<number>;
  /** Resolves once `redis-cli --cluster check` passes: every node agrees on the slots, none is open. */
  agreed(timeoutMs?: number): Promise<void>;
  /** Resolves once every live node reports cluster_state:ok and `port` (if given) is no master. */
  healthy(timeoutMs?: number): Promise<void>;
  /** A plain connection to one node. */
  node(port: number): Redis;
  stop(): Promise<void>;
}

/** What `reshard` moved: `slot` (the key's) and `slots` of its master's in all, from the master on port `from` to `to`. */
export interface Reshard {
  from: number;
  to: number;
  slot: number;
  slots: number;
}

/** What CLUSTER SLOTS answers, replicas left out. */
export type ClusterSlots = Array<[from: number, to: number, master: [host: string, port: number, id: string]]>;

/**
 * Nodes on `firstPort`..+5; their cluster bus on `firstBusPort`..+5. Redis' default bus port (port +
 * 10000) would land in Linux's ephemeral range, where an outgoing connection can hold it first.
 */
export async function startRedisCluster(firstPort: number, firstBusPort: number): Promise<RedisClusterProcesses> {
  const dir = mkdtempSync(join(tmpdir(), 'kocmoc-redis-cluster-'));
  const ports = Array.from({ length: 6 }, (_, index) => firstPort + index);
  const children = new Map<number, ChildProcess>();
  const clients = new Set<Redis>();
  const start = async (port: number) => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`)];
    args.push('--cluster-port', String(firstBusPort + (port - firstPort)));
    args.push('--cluster-node-timeout', '1000', '--save', '', '--appendonly', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`);
    children.set(port, spawn('redis-server', args, { stdio: 'ignore' }));
    await listening(port);
  };
  const node = (port: number) => {
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
    client.on('error', () => {});
    clients.add(client);
    return client;
  };
  const kill = async (port: number) => {
    const child = children.get(port);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  };
  const stop = async () => {
    for (const client of clients) client.disconnect();
    await Promise.all(ports.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  const alive = () => ports.filter((port) => children.get(port)?.exitCode === null && children.get(port)?.signalCode === null);

  const healthy = async (timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = alive();
      const states = await Promise.all(
        live.map(async (port) => {
          const client = node(port);
          try {
            const info = (await client.cluster('INFO')) as string;
            return /cluster_state:ok/.test(info) && /cluster_known_nodes:6/.test(info);
          } catch {
            return false;
          } finally {
            client.disconnect();
            clients.delete(client);
          }
        }),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) {
        const waiting = live.filter((_, index) => !states[index]);
        throw new Error(`the Redis Cluster did not become healthy within ${timeoutMs} ms: not cluster_state:ok with 6 known nodes on ${waiting.map((port) => `:${port}`).join(', ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  const masterOf = async (key: string): Promise<number> => {
    for (const port of alive()) {
      const client = node(port);
      try {
        const slot = (await client.cluster('KEYSLOT', key)) as number;
        const shards = (await client.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
        const owner = shards.find(([from, to]) => slot >= from && slot <= to);
        if (owner) return owner[2][1];
      } catch {
        // Ask the next node.
      } finally {
        client.disconnect();
        clients.delete(client);
      }
    }
    throw new Error(`no master for ${key}`);
  };

  const agreed = async (timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const checked = await run('redis-cli', ['--cluster', 'check', `127.0.0.1:${alive()[0]}`], 10_000);
      if (checked.code === 0) return;
      if (Date.now() > deadline) throw new Error(`the Redis Cluster's nodes did not agree within ${timeoutMs} ms:\n${checked.output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };

  /** The slot of `key`, its master and another, and how many slots `reshard` moves between them to include it. */
  const reshardPlan = async (key: string) => {
    const client = node(alive()[0]!);
    try {
      const slot = (await client.cluster('KEYSLOT', key)) as number;
      const shards = (await client.cluster('SLOTS')) as unknown as ClusterSlots;
      const source = shards.find(([first, last]) => slot >= first && slot <= last)![2];
      const target = shards.map((shard) => shard[2]).find((master) => master[2] !== source[2])!;
      // The source's slots up to `slot`, in every range it owns (an earlier move can have split them).
      const slots = shards.filter((shard) => shard[2][2] === source[2] && shard[0] <= slot).reduce((sum, [first, last]) => sum + Math.min(last, slot) - first + 1, 0);
      return { slot, source, target, slots };
    } finally {
      client.disconnect();
      clients.delete(client);
    }
  };

  const reshard = async (key: string): Promise<Reshard> => {
    await agreed();
    const { slot, source, target, slots } = await reshardPlan(key);
    const args = ['--cluster', 'reshard', `127.0.0.1:${source[1]}`, '--cluster-from', source[2], '--cluster-to', target[2], '--cluster-slots', String(slots), '--cluster-yes'];
    const moved = await run('redis-cli', args, 120_000);
    // Non-zero when it refuses to start (a node disagrees, a slot is open) or a slot's move fails.
    if (moved.code !== 0) throw new Error(`redis-cli ${args.join(' ')} failed (${moved.code}):\n${moved.output.slice(-2_000)}`);
    await agreed();
    const owner = await masterOf(key);
    if (owner !== target[1]) throw new Error(`redis-cli --cluster reshard moved ${slots} slots, but slot ${slot} is on :${owner}, not :${target[1]}`);
    return { from: source[1], to: target[1], slot, slots };
  };

  try {
    await Promise.all(ports.map(start));
    // The join (gossip until every node agrees) took over 30 s on a saturated machine: allow 90 s,
    // without blocking the event loop meanwhile.
    const created = await run('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], CREATE_TIMEOUT_MS);
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed (${created.code ?? `killed after ${CREATE_TIMEOUT_MS} ms`}):\n${created.output}`);
    await healthy(60_000);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes: ports.map((port) => `127.0.0.1:${port}`).join(','),
    ports,
    masterOf,
    async moveSlot(key) {
      const from = await masterOf(key);
      const source = node(from);
      const slot = (await source.cluster('KEYSLOT', key)) as number;
      const shards = (await source.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      const masters = [...new Set(shards.map((shard) => shard[2][1]))];
      const to = masters.find((port) => port !== from)!;
      const target = node(to);
      const idOf = async (client: Redis) => (await client.call('CLUSTER', 'MYID')) as string;
      const [sourceId, targetId] = [await idOf(source), await idOf(target)];
      await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId);
      await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId);
      for (;;) {
        const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
        if (keys.length === 0) break;
        await source.call('MIGRATE', '127.0.0.1', to, '', 0, 5_000, 'KEYS', ...keys);
      }
      // The target first, so the slot is never owned by nobody; the others at once rather than by gossip.
      await target.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      await source.call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      for (const port of masters.filter((port) => port !== from && port !== to)) await node(port).call('CLUSTER', 'SETSLOT', slot, 'NODE', targetId);
      for (const client of [source, target]) {
        client.disconnect();
        clients.delete(client);
      }
      return { from, to };
    },
    reshard,
    slotsToReshard: async (key) => (await reshardPlan(key)).slots,
    agreed,
    kill,
    restart: start,
    healthy,
    node,
    stop,
  };
}
