// `npm run capacity -- --users 100000 --msgs-per-s 2000 --group-size 20 [--online-share 0.5] [--no-push]`:
// the capacity model (bench/capacity-model.ts, docs/capacity.md) for one workload.
import { parseArgs } from 'node:util';
import { capacity, COSTS, UNITS } from './capacity-model.ts';

const { values } = parseArgs({
  options: {
    users: { type: 'string' },
    'msgs-per-s': { type: 'string' },
    'group-size': { type: 'string' },
    'online-share': { type: 'string', default: '1' },
    'no-push': { type: 'boolean', default: false },
  },
});
const number = (name: string, value: string | undefined) => {
  const parsed = Number(value);
  if (value === undefined || !Number.isFinite(parsed) || parsed <= 0) {
    console.error(`--${name} must be a positive number. Usage: npm run capacity -- --users N --msgs-per-s N --group-size N [--online-share 0-1] [--no-push]`);
    process.exit(1);
  }
  return parsed;
};
const workload = {
  users: number('users', values.users),
  msgsPerS: number('msgs-per-s', values['msgs-per-s']),
  groupSize: number('group-size', values['group-size']),
  onlineShare: Math.min(1, number('online-share', values['online-share'])),
  push: !values['no-push'],
};
const result = capacity(workload);
const round = (value: number, digits = 1) => value.toLocaleString('en-US', { maximumFractionDigits: digits });
console.log(`workload: ${round(workload.users, 0)} connected users, ${round(workload.msgsPerS, 0)} messages/s, ${workload.groupSize} members per chat, ${workload.onlineShare * 100}% online, push ${workload.push ? 'on' : 'off'}`);
console.log(`deliveries: ${round(result.deliveriesPerS, 0)}/s`);
console.log(
  `API: ${result.api.instances} instances of ${UNITS.apiCores} core / ${UNITS.apiMemoryMib} MiB (${round(result.api.cores)} cores of work at ${UNITS.targetUtilization * 100}% target, ${round(result.api.memoryMib / 1024)} GiB; ${result.api.cpuBound ? 'CPU' : 'memory'}-bound)`,
);
console.log(`Redis: ${result.redis.masters === 1 ? '1 server (no cluster needed)' : `${result.redis.masters} masters`} (${round(result.redis.cores, 2)} cores of work; each message reaches ${result.redis.instancesPerMessage} instance(s))`);
console.log(`PostgreSQL primary: ${round(result.postgres.cores)} cores (writes; reads for history/search can go to replicas)`);
const farBelow = Math.max(...Object.values(result.pressure)) < 0.1 ? '; every tier is far below its limit' : '';
console.log(
  `first bottleneck: ${result.bottleneck}${farBelow} (share of its limit: API ${round(result.pressure.api * 100)}% of ${UNITS.apiMaxInstances} instances, Redis ${round(result.pressure.redis * 100)}% of ${UNITS.redisMaxMasters} masters, PostgreSQL ${round(result.pressure.postgres * 100)}% of ${UNITS.pgPrimaryMaxCores} cores)`,
);
console.log(`per-unit costs used: ${JSON.stringify(COSTS)}`);
