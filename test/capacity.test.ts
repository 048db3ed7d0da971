// The capacity model (bench/capacity-model.ts, docs/capacity.md): its arithmetic and the CLI.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { capacity, COSTS, sendsPerSecondOn } from '../bench/capacity-model.ts';

describe('capacity model', () => {
  it('sizes the API by CPU from the per-send, per-instance-reached and per-delivery costs', () => {
    const result = capacity({ users: 100_000, msgsPerS: 2_000, groupSize: 20, push: false });
    expect(result.deliveriesPerS).toBe(40_000);
    const reached = result.redis.instancesPerMessage;
    expect(reached).toBe(Math.min(20, result.api.instances));
    expect(result.api.cores).toBeCloseTo((2_000 * (COSTS.apiSendMs + reached * COSTS.apiInstanceEventMs)) / 1000 + (40_000 * COSTS.apiDeliveryUs) / 1e6, 6);
    expect(result.api.instances).toBe(Math.ceil(result.api.cores / 0.7));
    expect(result.api.cpuBound).toBe(true);
  });

  it('sizes the API by memory when many users are idle', () => {
    const result = capacity({ users: 1_000_000, msgsPerS: 10, groupSize: 2 });
    expect(result.api.cpuBound).toBe(false);
    // 1M x 9 KiB over (1024 - 250) MiB per instance.
    expect(result.api.instances).toBe(Math.ceil((1_000_000 * 9) / 1024 / (1024 - 250)));
  });

  it('finds PostgreSQL first when each message reaches one instance, and the API first for groups spread over many', () => {
    // Direct chats with one side online: every message is a write, and reaches one instance.
    expect(capacity({ users: 1_000_000, msgsPerS: 20_000, groupSize: 2, onlineShare: 0.5 }).bottleneck).toBe('postgres');
    expect(capacity({ users: 1_000_000, msgsPerS: 20_000, groupSize: 20 }).bottleneck).toBe('api');
    expect(capacity({ users: 1_000_000, msgsPerS: 5_000, groupSize: 200 }).bottleneck).toBe('api');
  });

  it('never needs more instances per message than instances or members', () => {
    const small = capacity({ users: 10_000, msgsPerS: 100, groupSize: 3 });
    expect(small.redis.instancesPerMessage).toBe(2);
    const big = capacity({ users: 1_000_000, msgsPerS: 5_000, groupSize: 200 });
    expect(big.api.instances).toBeGreaterThan(200);
    expect(big.redis.instancesPerMessage).toBe(200);
    const few = capacity({ users: 10_000, msgsPerS: 10, groupSize: 200 });
    expect(few.redis.instancesPerMessage).toBe(few.api.instances);
  });

  it('predicts fewer sends per second for bigger groups on the same cores', () => {
    expect(sendsPerSecondOn(2, 200, 30, 4)).toBeLessThan(sendsPerSecondOn(2, 20, 30, 4));
    expect(sendsPerSecondOn(2, 0, 0, 1)).toBeCloseTo(2000 / (COSTS.apiSendMs + COSTS.apiInstanceEventMs + COSTS.pgSendMs + COSTS.redisSendMs), 6);
    // Each instance a message reaches costs it the per-instance term.
    expect(sendsPerSecondOn(2, 200, 30, 4)).toBeLessThan(sendsPerSecondOn(2, 200, 30, 1));
  });

  it('prints a sizing from `npm run capacity`, and refuses a missing figure', () => {
    const ok = spawnSync('npm', ['run', '-s', 'capacity', '--', '--users', '100000', '--msgs-per-s', '2000', '--group-size', '20'], { encoding: 'utf8' });
    expect(ok.status, ok.stderr).toBe(0);
    const expected = capacity({ users: 100_000, msgsPerS: 2_000, groupSize: 20 });
    expect(ok.stdout).toMatch(new RegExp(`API: ${expected.api.instances} instances`));
    expect(ok.stdout).toMatch(new RegExp(`first bottleneck: ${expected.bottleneck}`));
    const bad = spawnSync('npm', ['run', '-s', 'capacity', '--', '--users', '100000'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--msgs-per-s must be a positive number/);
  });
});
