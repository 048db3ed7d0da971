// `prisma generate` without network: the CLI insists on locating a native schema engine it cannot
// download here, yet generating the client never uses it, so any existing file satisfies it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let cli;
try {
  cli = require.resolve('prisma/build/index.js');
} catch {
  // Production installs (`npm ci --omit=dev`) have no CLI; the image generated the client at build time.
  if (existsSync(new URL('../src/generated/prisma/client.ts', import.meta.url))) process.exit(0);
  console.error('prisma CLI not installed and no generated client found: run `npm install` first.');
  process.exit(1);
}

const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= fileURLToPath(import.meta.url);
env.PRISMA_HIDE_UPDATE_MESSAGE = '1';
const result = spawnSync(process.execPath, [cli, 'generate'], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
