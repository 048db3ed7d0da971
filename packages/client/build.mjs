// Builds @kocmoc/client (run by the repository's `npm install`, `npm run build`, and `npm pack`):
// 1. src/graphql-env.d.ts from ../../schema.graphql (gql.tada's introspection types), so the documents
//    are typed against the API as it is; with --check, fail instead when it is stale.
// 2. tsc: src/ to dist/ (ES modules and .d.ts), plus graphql-env.d.ts, which tsc does not copy.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { minifyIntrospection, outputIntrospectionFile } from '@gql.tada/internal';
import { buildSchema, introspectionFromSchema } from 'graphql';

const here = import.meta.dirname;
const schemaFile = path.join(here, '..', '..', 'schema.graphql');
const envFile = path.join(here, 'src', 'graphql-env.d.ts');
const check = process.argv.includes('--check');

/**
 * gql.tada's introspection types of schema.graphql, as its TypeScript plugin writes them, without the
 * plugin's `declare module 'gql.tada'` (the package passes its schema to initGraphQLTada; the global
 * augmentation would clash with a consumer's own gql.tada schema).
 */
export function introspectionTypes() {
  const schema = buildSchema(readFileSync(schemaFile, 'utf8'));
  const introspection = minifyIntrospection(introspectionFromSchema(schema, { descriptions: false }));
  const file = outputIntrospectionFile(introspection, { fileType: '.d.ts', shouldPreprocess: true });
  return file.slice(0, file.indexOf("import * as gqlTada from 'gql.tada';")).trimEnd() + '\n';
}

// Outside the repository (an unpacked tarball) there is no schema: the committed types stand.
if (existsSync(schemaFile)) {
  const types = introspectionTypes();
  if (readFileSync(envFile, { encoding: 'utf8', flag: 'a+' }) !== types) {
    if (check) {
      console.error('packages/client/src/graphql-env.d.ts is stale: run `npm run build` after changing schema.graphql');
      process.exit(1);
    }
    writeFileSync(envFile, types);
    console.log('@kocmoc/client: wrote src/graphql-env.d.ts from schema.graphql');
  }
}
if (check) process.exit(0);

const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
const dist = path.join(here, 'dist');
rmSync(dist, { recursive: true, force: true });
try {
  execFileSync(process.execPath, [tsc, '-p', path.join(here, 'tsconfig.build.json')], { stdio: 'inherit' });
} catch {
  console.error('@kocmoc/client: type errors (above)');
  process.exit(1);
}
copyFileSync(envFile, path.join(dist, 'graphql-env.d.ts'));
console.log('@kocmoc/client: built dist/');
