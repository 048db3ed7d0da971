import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, keyIdOf, loadConfig } from '../src/env.ts';

const dataDir = () => mkdtempSync(join(tmpdir(), 'kocmoc-env-'));

describe('loadConfig', () => {
  it('has working defaults for development', () => {
    const config = loadConfig({ DATA_DIR: dataDir() });
    expect(config.http.port).toBe(4000);
    expect(config.database.url).toBeUndefined();
    expect(config.auth.accessTokenTtlMs).toBe(15 * 60_000);
    expect(config.auth.refreshTokenTtlMs).toBe(30 * 86_400_000);
    expect(config.redisUrl).toBeUndefined();
    expect(config.shutdownTimeoutMs).toBe(10_000);
  });

  it('reads SHUTDOWN_TIMEOUT as a duration', () => {
    expect(loadConfig({ DATA_DIR: dataDir(), SHUTDOWN_TIMEOUT: '25s' }).shutdownTimeoutMs).toBe(25_000);
    expect(loadConfig({ DATA_DIR: dataDir(), SHUTDOWN_TIMEOUT: '1500ms' }).shutdownTimeoutMs).toBe(1_500);
    expect(() => loadConfig({ DATA_DIR: dataDir(), SHUTDOWN_TIMEOUT: 'soon' })).toThrow(/SHUTDOWN_TIMEOUT: expected a duration/);
  });

  it('keeps a generated JWT secret under DATA_DIR across loads', () => {
    const dir = dataDir();
    const first = loadConfig({ DATA_DIR: dir }).auth.jwtSecret;
    expect(first.length).toBeGreaterThanOrEqual(32);
    expect(loadConfig({ DATA_DIR: dir }).auth.jwtSecret).toBe(first);
    expect(readFileSync(join(dir, 'jwt-secret'), 'utf8')).toBe(first);
  });

  it('names every bad variable, one per line', () => {
    let message = '';
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', JWT_TTL: 'soon', REDIS_URL: 'http://x', LOG_LEVEL: 'loud' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    for (const variable of ['PORT', 'DATABASE_URL', 'JWT_TTL', 'REDIS_URL', 'LOG_LEVEL']) {
      expect(message).toMatch(new RegExp(`^  ${variable}: `, 'm'));
    }
  });

  it('requires a strong JWT_SECRET, a message key and VAPID keys in production', () => {
    const key = randomBytes(32).toString('base64');
    const vapid = { VAPID_PUBLIC_KEY: 'BPub', VAPID_PRIVATE_KEY: 'priv', VAPID_SUBJECT: 'mailto:ops@example.com' };
    expect(() => loadConfig({ NODE_ENV: 'production', DATA_DIR: dataDir() })).toThrow(
      /JWT_SECRET: required[^]*VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY, VAPID_SUBJECT: required[^]*MESSAGE_ENCRYPTION_KEY: required/,
    );
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short', MESSAGE_ENCRYPTION_KEY: key, ...vapid })).toThrow(/JWT_SECRET: must be at least 32/);
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), MESSAGE_ENCRYPTION_KEY: key, ...vapid });
    expect(config.auth.jwtSecret).toBe('x'.repeat(32));
    expect(config.messageEncryption.keys[config.messageEncryption.currentKeyId]).toEqual(Buffer.from(key, 'base64'));
  });

  it('derives key ids and keeps old keys readable for rotation', () => {
    const [current, old] = [randomBytes(32), randomBytes(32)];
    const { messageEncryption } = loadConfig({
      MESSAGE_ENCRYPTION_KEY: current.toString('base64'),
      MESSAGE_ENCRYPTION_OLD_KEYS: ` ${old.toString('base64')} ,`,
    });
    expect(messageEncryption.currentKeyId).toBe(keyIdOf(current));
    expect(Object.keys(messageEncryption.keys).sort()).toEqual([keyIdOf(current), keyIdOf(old)].sort());
    expect(() => loadConfig({ MESSAGE_ENCRYPTION_KEY: 'c2hvcnQ=' })).toThrow(/MESSAGE_ENCRYPTION_KEY: must be 32 bytes/);
    expect(() => loadConfig({ MESSAGE_ENCRYPTION_OLD_KEYS: 'c2hvcnQ=' })).toThrow(/MESSAGE_ENCRYPTION_OLD_KEYS: must be 32 bytes/);
  });

  it('generates a development message key under DATA_DIR and keeps it', () => {
    const dir = dataDir();
    const first = loadConfig({ DATA_DIR: dir }).messageEncryption;
    expect(loadConfig({ DATA_DIR: dir }).messageEncryption.currentKeyId).toBe(first.currentKeyId);
    expect(Buffer.from(readFileSync(join(dir, 'message-key'), 'utf8'), 'base64')).toHaveLength(32);
  });

  it('builds DATABASE_URL from PG_* parts, escaping them', () => {
    const config = loadConfig({ PG_HOST: 'db.internal', PG_PORT: '6543', PG_DATABASE: 'chat', PG_USER: 'app', PG_PASSWORD: 'p@ss/word', PG_SSL: 'true' });
    const url = new URL(config.database.url!);
    expect(url.hostname).toBe('db.internal');
    expect(url.port).toBe('6543');
    expect(url.pathname).toBe('/chat');
    expect(decodeURIComponent(url.password)).toBe('p@ss/word');
    expect(url.searchParams.get('sslmode')).toBe('require');
  });

  it('accepts argon2id settings only as strong as one of OWASP rows', () => {
    expect(loadConfig({}).auth.passwordHash).toEqual({ memoryKib: 12_288, passes: 3 });
    expect(loadConfig({ PASSWORD_HASH_MEMORY_KIB: '47104', PASSWORD_HASH_PASSES: '1' }).auth.passwordHash).toEqual({ memoryKib: 47_104, passes: 1 });
    expect(loadConfig({ PASSWORD_HASH_MEMORY_KIB: '65536', PASSWORD_HASH_PASSES: '3' }).auth.passwordHash.memoryKib).toBe(65_536);
    expect(() => loadConfig({ PASSWORD_HASH_MEMORY_KIB: '19456', PASSWORD_HASH_PASSES: '1' })).toThrow(/PASSWORD_HASH_PASSES: 1 passes at 19456 KiB is weaker than OWASP's minimum/);
    expect(() => loadConfig({ PASSWORD_HASH_MEMORY_KIB: '12288', PASSWORD_HASH_PASSES: '2' })).toThrow(/weaker than OWASP/);
    expect(() => loadConfig({ PASSWORD_HASH_MEMORY_KIB: '4096', PASSWORD_HASH_PASSES: '10' })).toThrow(/PASSWORD_HASH_MEMORY_KIB/);
  });

  it('limits non-upload request bodies to MAX_REQUEST_BYTES, 1 MiB by default', () => {
    expect(loadConfig({}).http.maxRequestBytes).toBe(1024 * 1024);
    expect(loadConfig({ MAX_REQUEST_BYTES: '65536' }).http.maxRequestBytes).toBe(65_536);
    expect(() => loadConfig({ MAX_REQUEST_BYTES: '1000' })).toThrow(/MAX_REQUEST_BYTES: must be at least 16384/);
    expect(() => loadConfig({ MAX_REQUEST_BYTES: 'lots' })).toThrow(/MAX_REQUEST_BYTES/);
  });

  it('holds upload memory to at least what one largest upload needs at once', () => {
    expect(loadConfig({}).files.uploadMemoryBytes).toBe(256 * 1024 * 1024);
    // 3 x 1 MiB + 64 KiB: an image's body, the copy the worker decodes and the stripped original.
    const least = 3 * 1024 * 1024 + 64 * 1024;
    expect(loadConfig({ MAX_UPLOAD_BYTES: String(1024 * 1024), UPLOAD_MEMORY_BYTES: String(least) }).files.uploadMemoryBytes).toBe(least);
    expect(() => loadConfig({ MAX_UPLOAD_BYTES: String(1024 * 1024), UPLOAD_MEMORY_BYTES: String(least - 1) })).toThrow(
      new RegExp(`^  UPLOAD_MEMORY_BYTES: must be at least ${least} \\(3 x MAX_UPLOAD_BYTES \\+ 64 KiB\\)[^\\n]*; got ${least - 1}$`, 'm'),
    );
    // The default budget is checked against a raised MAX_UPLOAD_BYTES too.
    expect(() => loadConfig({ MAX_UPLOAD_BYTES: String(100 * 1024 * 1024) })).toThrow(/UPLOAD_MEMORY_BYTES: must be at least 314638336 /);
    expect(() => loadConfig({ UPLOAD_MEMORY_BYTES: 'lots' })).toThrow(/UPLOAD_MEMORY_BYTES: /);
  });

  it('prefers DATABASE_URL over PG_* and treats empty values as unset', () => {
    const config = loadConfig({ DATABASE_URL: 'postgresql://a@b/c', PG_HOST: 'other', REDIS_URL: '', ADMIN_TOKEN: '' });
    expect(config.database.url).toBe('postgresql://a@b/c');
    expect(config.redisUrl).toBeUndefined();
    expect(config.adminToken).toBeUndefined();
  });
});
