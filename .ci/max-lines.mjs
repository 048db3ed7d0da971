// `npm run lint:size`: no source file under the given folders is longer than the limit, so no file
// grows to do four jobs. Usage: node .ci/max-lines.mjs <limit> <folder>...
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [limitArg, ...folders] = process.argv.slice(2);
const limit = Number(limitArg);
const tooLong = [];
for (const folder of folders) {
  for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (!entry.isFile() || !/\.(ts|mts|mjs|js)$/.test(entry.name) || path.includes('/generated/')) continue;
    const lines = readFileSync(path, 'utf8').split('\n').length - 1;
    if (lines > limit) tooLong.push(`${path}: ${lines} lines`);
  }
}
if (tooLong.length > 0) {
  console.error(`Files over ${limit} lines (split them by job):\n  ${tooLong.join('\n  ')}`);
  process.exit(1);
}
console.log(`no file in ${folders.join(', ')} is over ${limit} lines`);
