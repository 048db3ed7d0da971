// Prisma's schema engine compiled to WebAssembly (@prisma/schema-engine-wasm): loading it into
// Node, running one engine over our driver adapter, and turning its logs and failures into ours.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as wasmBindings from '@prisma/schema-engine-wasm/schema_engine_bg';
import type { SchemaEngine } from '@prisma/schema-engine-wasm/schema_engine_bg';
import { trackingAdapterFactory } from './adapter.ts';

/** Options of {@link withEngine}. */
export interface EngineOptions {
  /** The database the engine works on; shadow databases are created on its server. */
  databaseUrl: string;
  /** The Prisma schema, if the command needs one (no default: undefined means none). */
  datamodel: { path: string; content: string } | undefined;
  /** Receives the engine's warnings and errors, and cleanup failures. */
  log: (msg: string) => void;
}

/** Runs `fn` against a fresh engine, then frees it and closes every pool and shadow database. */
export async function withEngine<T>(options: EngineOptions, fn: (engine: SchemaEngine) => Promise<T>): Promise<T> {
  const SchemaEngineClass = await loadSchemaEngine();
  const adapters = trackingAdapterFactory(options.databaseUrl, options.log);
  let engine: SchemaEngine | undefined;
  enginesRunning++;
  try {
    engine = await SchemaEngineClass.new(
      { datamodels: options.datamodel ? [[options.datamodel.path, options.datamodel.content]] : undefined },
      (line: string) => forwardEngineLog(line, options.log),
      bindMigrationAwareSqlAdapterFactory(adapters.factory),
    );
    return await fn(engine);
  } catch (error) {
    throw toError(error);
  } finally {
    engine?.free();
    if (--enginesRunning === 0) {
      for (const timer of engineTimers) clearTimeout(timer);
      engineTimers.clear();
    }
    await adapters.close();
  }
}

type SchemaEngineClass = typeof wasmBindings.SchemaEngine;
let engineClass: Promise<SchemaEngineClass> | undefined;

/**
 * Instantiates the WASM module once per process. The package's ESM entry does
 * `import * as wasm from "./schema_engine_bg.wasm"`, which Node cannot load, so we do what it
 * would: instantiate the file with the JS glue as its import object and hand it to the glue.
 */
function loadSchemaEngine(): Promise<SchemaEngineClass> {
  engineClass ??= (async () => {
    // The .wasm file is not in the package's "exports"; it sits next to the glue module.
    const gluePath = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bytes = await readFile(path.join(path.dirname(gluePath), 'schema_engine_bg.wasm'));
    const imports: WebAssembly.ModuleImports = { ...(wasmBindings as unknown as WebAssembly.ModuleImports) };
    for (const name of Object.keys(imports)) {
      if (name.startsWith('__wbg_setTimeout_')) imports[name] = engineSetTimeout;
    }
    const { instance } = await WebAssembly.instantiate(bytes, { './schema_engine_bg.js': imports });
    wasmBindings.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    // The glue reports Rust panics through this global (the Prisma CLI installs the same).
    const registry = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { message: string } };
    registry.PRISMA_WASM_PANIC_REGISTRY ??= {
      message: '',
      set_message(this: { message: string }, message: string) {
        this.message = `RuntimeError: ${message}`;
      },
    } as { message: string };
    return wasmBindings.SchemaEngine;
  })();
  engineClass.catch(() => (engineClass = undefined)); // let a later call retry
  return engineClass;
}

// The engine arms timers it never cancels (e.g. a 10 s timeout around its advisory lock), which
// would keep the process alive for that long after we are done; we clear them once no engine runs.
const engineTimers = new Set<NodeJS.Timeout>();
let enginesRunning = 0;

function engineSetTimeout(callback: () => void, ms: number): NodeJS.Timeout {
  const timer = setTimeout(() => {
    engineTimers.delete(timer);
    callback();
  }, ms >>> 0);
  engineTimers.add(timer);
  return timer;
}

/** Engine log lines are JSON tracing events; pass on warnings and errors only (INFO is chatter). */
function forwardEngineLog(line: string, log: (msg: string) => void): void {
  try {
    const event = JSON.parse(line) as { level?: string; fields?: { message?: string } };
    if (event.level === 'WARN' || event.level === 'ERROR') {
      log(`schema engine ${event.level.toLowerCase()}: ${event.fields?.message ?? line.trim()}`);
    }
  } catch {
    log(`schema engine: ${line.trim()}`);
  }
}

/** Engine failures arrive as plain objects or strings; make them Errors with a useful message. */
function toError(error: unknown): Error {
  if (error instanceof WebAssembly.RuntimeError) {
    const panic = (globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { message: string } }).PRISMA_WASM_PANIC_REGISTRY;
    return new Error(`schema engine panicked: ${panic?.message || error.message}`, { cause: error });
  }
  if (error instanceof Error) return error;
  if (typeof error === 'string') return new Error(error);
  const message = (error as { message?: unknown } | null)?.message;
  return new Error(typeof message === 'string' ? message : JSON.stringify(error), { cause: error });
}
