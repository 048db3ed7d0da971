// Servers the scaling tests start themselves (pgbouncer, redis-server cluster nodes, a replica
// PostgreSQL): whether the binary is here, and a port of a given range that is free now.
import { spawnSync } from 'node:child_process';
import { isFree } from './ports.ts';

/**
 * Whether `binary` can run. Missing under CI=true fails (.ci/run installs `aptPackage`); missing
 * elsewhere warns once, and the caller skips its tests.
 */
export function haveBinary(binary: string, aptPackage: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).status === 0;
  if (found) return true;
  if (process.env.CI === 'true') throw new Error(`${binary} is missing: .ci/run installs it (apt-get install ${aptPackage})`);
  console.warn(`${binary} not found (apt-get install ${aptPackage}): skipping the tests that need it`);
  return false;
}

/** A TCP port on 127.0.0.1 in [from, to] that is free now (tried in random order). */
export async function freePortIn(from: number, to: number): Promise<number> {
  const candidates = Array.from({ length: to - from + 1 }, (_, index) => from + index).sort(() => Math.random() - 0.5);
  for (const port of candidates) if (await isFree(port)) return port;
  throw new Error(`no free port in ${from}-${to}`);
}
