// `npm run build` (also run by `npm install`, after @kocmoc/client's build): the web client served at `/`.
// 1. Type-check with tsc (a type error fails the build): its documents and their types are
//    @kocmoc/client's, typed from schema.graphql.
// 2. Bundle with esbuild into web/dist/ (git-ignored), beside the files of web/public/; @kocmoc/client
//    is bundled from its sources (its "source" export condition).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

const web = import.meta.dirname;
const root = path.dirname(web);
const dist = path.join(web, 'dist');

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
const common = { bundle: true, conditions: ['source'], minify: true, sourcemap: 'linked', target: 'es2022', legalComments: 'none', logLevel: 'warning' };
await build({ ...common, entryPoints: { app: path.join(web, 'src', 'main.tsx') }, outdir: dist, format: 'esm', jsx: 'automatic', jsxImportSource: 'preact' });
await build({ ...common, entryPoints: { sw: path.join(web, 'src', 'sw.ts') }, outdir: dist, format: 'iife' });
console.log(`web: built ${path.relative(root, dist)}/`);
