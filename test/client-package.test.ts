// @kocmoc/client as a consumer gets it: `npm pack` builds it (its prepack) into a tarball of dist/
// only; unpacked into a project outside the repository, with nothing beside it but the packages its
// package.json names (linked from this repository: no network), Node imports its build (no "source"
// condition), signs in against a running API with it, and tsc type-checks code against its .d.ts.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../src/server/app.ts';
import { registerUser, startSocketTestApp, type TestUser } from './support/helpers.ts';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..');
const packageDir = join(root, 'packages', 'client');
const work = mkdtempSync(join(tmpdir(), 'kocmoc-client-package-'));
const project = join(work, 'consumer');

let packed: { filename: string; files: Array<{ path: string }> };
let app: App;
let url: string;
let user: TestUser;

const CONSUMER_JS = `
import { createKocmocClient, graphcacheKeys, LoginMutation } from '@kocmoc/client';
import { kocmocTypePolicies } from '@kocmoc/client/apollo';
import * as documents from '@kocmoc/client/documents';
import { print } from 'graphql';

const [url, login, password] = process.argv.slice(2);
const client = createKocmocClient({ url, getAccessToken: () => null });
const result = await client.mutation(LoginMutation, { input: { login, password } }).toPromise();
console.log(JSON.stringify({
  error: result.error?.message ?? null,
  userId: result.data?.login.user.id ?? null,
  operation: print(documents.SendMessageMutation).split('\\n')[0],
  graphcacheKeys: Object.keys(graphcacheKeys).length,
  apolloChat: Object.keys(kocmocTypePolicies.Chat?.fields ?? {}),
}));
`;

const CONSUMER_TS = `
import { createKocmocClient } from '@kocmoc/client';
import { kocmocTypePolicies } from '@kocmoc/client/apollo';
import { LoginMutation, type Message, type ResultOf, type VariablesOf } from '@kocmoc/client/documents';

type Login = ResultOf<typeof LoginMutation>;
export const token = (answer: Login): string => answer.login.accessToken;
export const sender = (message: Message): string => message.sender.displayName;
// @ts-expect-error: a login input needs its password (fails if the types are lost to any)
export const input: VariablesOf<typeof LoginMutation>['input'] = { login: 'someone' };
export const client = createKocmocClient({ url: 'https://kocmoc.example/graphql', getAccessToken: () => null });
export const policies = kocmocTypePolicies;
`;

beforeAll(async () => {
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: packageDir });
  packed = JSON.parse(stdout.slice(stdout.indexOf('[')))[0];
  const installed = join(project, 'node_modules', '@kocmoc', 'client');
  mkdirSync(installed, { recursive: true });
  await run('tar', ['-xzf', join(work, packed.filename), '-C', installed, '--strip-components=1']);
  // What an install would put beside it: its dependencies and peer dependencies, nothing else.
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
  for (const name of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })) {
    mkdirSync(dirname(join(project, 'node_modules', name)), { recursive: true });
    symlinkSync(join(root, 'node_modules', name), join(project, 'node_modules', name), 'dir');
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(join(project, 'consumer.mjs'), CONSUMER_JS);
  writeFileSync(join(project, 'consumer.ts'), CONSUMER_TS);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, skipLibCheck: true, lib: ['es2023', 'dom'], types: [] }, files: ['consumer.ts'] }),
  );
  ({ app, url } = await startSocketTestApp());
  user = await registerUser(app);
}, 120_000);
afterAll(async () => {
  await app?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('the packed @kocmoc/client', () => {
  it('holds its build, manifest and README only', () => {
    const paths = packed.files.map((file) => file.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md']));
    expect(paths).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'dist/documents.js', 'dist/apollo.js', 'dist/graphql-env.d.ts']));
    expect(paths.filter((path) => !['package.json', 'README.md'].includes(path) && !path.startsWith('dist/'))).toEqual([]);
  });

  it('runs from outside the repository: Node imports its build and signs in against the API', async () => {
    const { stdout } = await run(process.execPath, ['consumer.mjs', url, user.username, user.password], { cwd: project });
    expect(JSON.parse(stdout)).toEqual({
      error: null,
      userId: user.id,
      operation: 'mutation SendMessage($input: SendMessageInput!) {',
      graphcacheKeys: expect.any(Number),
      apolloChat: ['messages', 'members'],
    });
  });

  it('type-checks a consumer against its .d.ts', async () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    await expect(run(process.execPath, [tsc, '-p', project], { cwd: project })).resolves.toBeDefined();
  });
});
