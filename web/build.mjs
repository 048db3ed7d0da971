// `npm run build` (also run by `npm install`): the web client served at `/`.
// 1. src/graphql-env.d.ts (and packages/client's) from schema.graphql (gql.tada's introspection types),
//    so the clients are typed against the API as it is; with --check, fail instead when one is stale.
// 2. Type-check with tsc (a type error fails the build).
// 3. Bundle with esbuild into web/dist/ (git-ignored), beside the files of web/public/.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { minifyIntrospection, outputIntrospectionFile } from '@gql.tada/internal';
import { build } from 'esbuild';
import { buildSchema, introspectionFromSchema } from 'graphql';

const web = import.meta.dirname;
const root = path.dirname(web);
const dist = path.join(web, 'dist');
const check = process.argv.includes('--check');

/** gql.tada's introspection types of schema.graphql, as its TypeScript plugin would write them. */
export function introspectionTypes() {
  const schema = buildSchema(readFileSync(path.join(root, 'schema.graphql'), 'utf8'));
  const introspection = minifyIntrospection(introspectionFromSchema(schema, { descriptions: false }));
  return outputIntrospectionFile(introspection, { fileType: '.d.ts', shouldPreprocess: true });
}

// The web client's documents and @kocmoc/client's are typed from the same introspection.
const types = introspectionTypes();
for (const envFile of [path.join(web, 'src', 'graphql-env.d.ts'), path.join(root, 'packages', 'client', 'src', 'graphql-env.d.ts')]) {
  const shown = path.relative(root, envFile);
  const current = readFileSync(envFile, { encoding: 'utf8', flag: 'a+' });
  if (current === types) continue;
  if (check) {
    console.error(`${shown} is stale: run \`npm run build\` after changing schema.graphql`);
    process.exit(1);
  }
  writeFileSync(envFile, types);
  console.log(`web: wrote ${shown} from schema.graphql`);
}
if (check) process.exit(0);

const tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
for (const project of ['tsconfig.json', 'tsconfig.sw.json']) {
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(web, project)], { stdio: 'inherit' });
  } catch {
    console.error(`web: type errors in ${project} (above)`);
    process.exit(1);
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });
cpSync(path.join(web, 'public'), dist, { recursive: true });
const common = { bundle: true, minify: true, sourcemap: 'linked', target: 'es2022', legalComments: 'none', logLevel: 'warning' };
await build({ ...common, entryPoints: { app: path.join(web, 'src', 'main.tsx') }, outdir: dist, format: 'esm', jsx: 'automatic', jsxImportSource: 'preact' });
await build({ ...common, entryPoints: { sw: path.join(web, 'src', 'sw.ts') }, outdir: dist, format: 'iife' });
console.log(`web: built ${path.relative(root, dist)}/`);
