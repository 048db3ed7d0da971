// Piscina worker entry. Worker threads do not inherit the TypeScript loader of the main thread
// (tsx, vitest), so the tasks are loaded through tsx's API here; this file stays plain JS.
import { performance } from 'node:perf_hooks';
import { tsImport } from 'tsx/esm/api';

const tasks = await tsImport('./index.ts', import.meta.url);

/** Runs one task and reports how long it took, so the pool can estimate queued work. */
export default async function runTask({ task, input }) {
  const fn = tasks[task];
  if (typeof fn !== 'function') throw new Error(`Unknown worker task: ${task}`);
  const started = performance.now();
  const result = await fn(input);
  return { result, ms: performance.now() - started };
}
