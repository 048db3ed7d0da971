// Persisted operations. Automatic persisted queries (APQ): a client sends a document's SHA-256
// alone, and the document with it once the server answers PERSISTED_QUERY_NOT_FOUND. Trusted
// documents: a manifest built with the clients; with PERSISTED_OPERATIONS_ONLY nothing else runs.
// HTTP goes through Yoga's plugins; graphql-ws payloads resolve through the same stores.
import { readFileSync } from 'node:fs';
import { useAPQ, type APQStore } from '@graphql-yoga/plugin-apq';
import { usePersistedOperations } from '@graphql-yoga/plugin-persisted-operations';
import { GraphQLError } from 'graphql';
import { createLRUCache, type Plugin } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import type { Config } from '../env.ts';

/** A registered document is kept this long after its last registration (Redis) or use (memory). */
const APQ_TTL_SECONDS = 24 * 3600;
const APQ_KEY_PREFIX = 'kocmoc:apq:';
/** Documents the in-process store keeps (least recently used go first). */
const APQ_MEMORY_ENTRIES = 1_000;

export type PersistedOperationsConfig = Config['exposure']['persistedOperations'];

function persistedError(code: string, message: string, status: number) {
  return new GraphQLError(message, { extensions: { code, http: { status } } });
}

const notFound = () =>
  persistedError('PERSISTED_QUERY_NOT_FOUND', 'PersistedQueryNotFound: send the document with its hash once to register it.', 404);
const notInList = () => persistedError('PERSISTED_QUERY_NOT_IN_LIST', 'This document id is not in the trusted documents manifest.', 404);
const onlyPersisted = () =>
  persistedError(
    'PERSISTED_QUERY_ONLY',
    'This server runs trusted documents only: send the id of a document from its manifest as extensions.persistedQuery.sha256Hash, without a query.',
    400,
  );
const idRequired = () => persistedError('PERSISTED_QUERY_ID_REQUIRED', 'Send extensions.persistedQuery.sha256Hash (version 1).', 400);

/** Reads `{ "<id>": "<document>" }`, failing at startup on anything else. */
export function loadManifest(file: string): ReadonlyMap<string, string> {
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file}: expected an object of id -> document`);
  const entries = Object.entries(parsed);
  const bad = entries.find(([, document]) => typeof document !== 'string');
  if (bad) throw new Error(`${file}: the document of "${bad[0]}" is not a string`);
  return new Map(entries as Array<[string, string]>);
}

function redisStore(redis: Redis): APQStore {
  return {
    get: (hash) => redis.get(APQ_KEY_PREFIX + hash),
    set: (hash, query) => redis.set(APQ_KEY_PREFIX + hash, query, 'EX', APQ_TTL_SECONDS),
  };
}

/** The manifest first (its documents never expire), then what clients registered. */
function apqStore(manifest: ReadonlyMap<string, string>, redis: Redis | undefined): APQStore {
  const registered = redis ? redisStore(redis) : createLRUCache<string>({ max: APQ_MEMORY_ENTRIES, ttl: APQ_TTL_SECONDS * 1000 });
  return {
    get: (hash) => manifest.get(hash) ?? registered.get(hash),
    set: (hash, query) => (manifest.has(hash) ? undefined : registered.set(hash, query)),
  };
}

const hashOf = (extensions: unknown): string | undefined => {
  const persisted = (extensions as { persistedQuery?: { version?: unknown; sha256Hash?: unknown } } | null | undefined)?.persistedQuery;
  return persisted?.version === 1 && typeof persisted.sha256Hash === 'string' ? persisted.sha256Hash : undefined;
};

export interface PersistedOperations {
  /** Yoga's plugins for HTTP (none when APQ is off and there is no manifest). */
  plugins: Plugin[];
  /**
   * The document a graphql-ws subscribe payload stands for (its query, or the persisted document of
   * its hash), or the error to answer with. Documents are not registered over graphql-ws.
   */
  socketQuery(payload: { query?: string | null; extensions?: unknown }): Promise<string | GraphQLError>;
}

export function createPersistedOperations(config: PersistedOperationsConfig, redis: Redis | undefined): PersistedOperations {
  const manifest = config.manifestFile ? loadManifest(config.manifestFile) : new Map<string, string>();
  if (config.only) {
    return {
      plugins: [
        usePersistedOperations({
          getPersistedOperation: (id) => manifest.get(id) ?? null,
          customErrors: { notFound: notInList, keyNotFound: idRequired, persistedQueryOnly: onlyPersisted },
        }),
      ],
      async socketQuery({ query, extensions }) {
        if (query) return onlyPersisted();
        const hash = hashOf(extensions);
        if (hash === undefined) return idRequired();
        return manifest.get(hash) ?? notInList();
      },
    };
  }
  const store = config.apq ? apqStore(manifest, redis) : undefined;
  const lookup = store ? store.get : (hash: string) => manifest.get(hash);
  return {
    plugins: store ? [useAPQ({ store })] : manifest.size > 0 ? [useManifestLookups(manifest)] : [],
    async socketQuery({ query, extensions }) {
      if (query) return query;
      const hash = hashOf(extensions);
      if (hash === undefined) return idRequired();
      return (await lookup(hash)) ?? notFound();
    },
  };
}

/** A manifest without APQ and without PERSISTED_OPERATIONS_ONLY: its ids work, and any document too. */
function useManifestLookups(manifest: ReadonlyMap<string, string>): Plugin {
  return usePersistedOperations({
    allowArbitraryOperations: true,
    getPersistedOperation: (id) => manifest.get(id) ?? null,
    customErrors: { notFound: notInList, keyNotFound: idRequired },
  });
}
