// Piscina worker entry. Worker threads do not inherit the TypeScript loader of the main thread
// (tsx, vitest), so the tasks are loaded through tsx's API here; this file stays plain JS.
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { tsImport } from 'tsx/esm/api';

const tasks = await tsImport('./index.ts', import.meta.url);

/** The ArrayBuffers a task lists on its result as safe to move rather than copy (see workers/crypto.ts). */
const TRANSFERABLE_RESULT = Symbol.for('kocmoc.worker.transferableResult');

/** Runs one task and reports how long it took, so the pool can estimate queued work. */
export default async function runTask({ task, input }) {
  const fn = tasks[task];
  if (typeof fn !== 'function') throw new Error(`Unknown worker task: ${task}`);
  const started = performance.now();
  const result = await fn(input);
  const reply = { result, ms: performance.now() - started };
  const movable = result?.[TRANSFERABLE_RESULT];
  return Array.isArray(movable) && movable.length > 0 ? moving(reply, movable) : reply;
}

/**
 * Piscina moves only what a top-level Transferable lists, so the whole `{ result, ms }` reply is
 * wrapped and the result's buffers go to the main thread without a copy (bench/RESULTS.md).
 */
function moving(reply, buffers) {
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return buffers;
    },
    get [Piscina.valueSymbol]() {
      return reply;
    },
  });
}
