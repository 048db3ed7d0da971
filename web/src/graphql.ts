// The `graphql` tag: documents written with it are typed from schema.graphql (through the
// introspection types in graphql-env.d.ts, which `npm run build` regenerates).
import { initGraphQLTada } from 'gql.tada';
import type { introspection } from './graphql-env.d.ts';

export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: { DateTime: string; File: File };
  // Fragments are read as plain fields of their parent (no readFragment calls): a small app.
  disableMasking: true;
}>();

export type { ResultOf, VariablesOf } from 'gql.tada';
