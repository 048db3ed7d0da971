import { describe, expect, it } from 'vitest';
import { checkFileUrl, signFileUrl } from '../src/files/signed-urls.ts';

const SECRET = 'a-secret-long-enough-for-the-file-link-tests';
const LINK = { attachmentId: 'att-1', variant: 'original' as const, viewerId: 'user-1' };
const TTL_MS = 5 * 60_000;
const queryOf = (url: string) => new URL(url, 'http://kocmoc.test').searchParams;
const expiresOf = (url: string) => Number(queryOf(url).get('expires')) * 1_000;

describe('signed file links', () => {
  it('hands out the same URL within a quarter of the TTL, so clients can cache the file', () => {
    const start = Date.UTC(2026, 10, 21, 12, 0, 0);
    const first = signFileUrl(SECRET, LINK, TTL_MS, start + 1_000);
    expect(signFileUrl(SECRET, LINK, TTL_MS, start + 60_000)).toBe(first);
    expect(signFileUrl(SECRET, LINK, TTL_MS, start + 75_000 + 1)).not.toBe(first);
    expect(signFileUrl(SECRET, { ...LINK, viewerId: 'user-2' }, TTL_MS, start + 1_000)).not.toBe(first);
  });

  it('lives at least the TTL and at most 1.25 times it', () => {
    for (let now = Date.UTC(2026, 10, 21); now < Date.UTC(2026, 10, 21) + 10 * 60_000; now += 7_919) {
      const lifetime = expiresOf(signFileUrl(SECRET, LINK, TTL_MS, now)) - now;
      expect(lifetime).toBeGreaterThanOrEqual(TTL_MS);
      expect(lifetime).toBeLessThanOrEqual(TTL_MS * 1.25 + 1_000);
    }
  });

  it('is accepted until it expires and refused after', () => {
    const now = Date.UTC(2026, 10, 21, 12, 0, 0);
    const url = signFileUrl(SECRET, LINK, TTL_MS, now);
    expect(checkFileUrl(SECRET, LINK.attachmentId, 'original', queryOf(url), now).ok).toBe(true);
    expect(checkFileUrl(SECRET, LINK.attachmentId, 'original', queryOf(url), expiresOf(url) - 1).ok).toBe(true);
    expect(checkFileUrl(SECRET, LINK.attachmentId, 'original', queryOf(url), expiresOf(url))).toEqual({ ok: false, reason: 'expired' });
    expect(checkFileUrl(SECRET, LINK.attachmentId, 'thumbnail', queryOf(url), now)).toEqual({ ok: false, reason: 'invalid' });
  });
});
