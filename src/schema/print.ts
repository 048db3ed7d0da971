// `npm run schema:print` writes schema.graphql; a test fails when the committed file is stale.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { GraphQLDeferDirective, GraphQLStreamDirective } from '@graphql-tools/utils';
import { GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { schema } from './index.ts';

export const SCHEMA_FILE = new URL('../../schema.graphql', import.meta.url);

/** The schema as served: Yoga's defer-stream plugin (src/server/app.ts) adds @defer and @stream. */
export function printedSchema(): string {
  const served = new GraphQLSchema({ ...schema.toConfig(), directives: [...schema.getDirectives(), GraphQLDeferDirective, GraphQLStreamDirective] });
  return `${printSchema(lexicographicSortSchema(served))}\n`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SCHEMA_FILE, printedSchema());
  console.log('wrote schema.graphql');
}
