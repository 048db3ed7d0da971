// TURN credentials in the TURN REST API convention coturn's use-auth-secret checks, the calls
// settings, and the per-call signal limit.
import { createHmac } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { iceServersFor } from '../src/calls/turn.ts';
import { loadConfig } from '../src/env.ts';

const config = (env: Record<string, string>) => loadConfig({ DATA_DIR: mkdtempSync(join(tmpdir(), 'kocmoc-turn-')), ...env });

describe('iceServers', () => {
  it('is empty without TURN_URLS', () => {
    expect(iceServersFor(config({}).calls.turn, 'user-1')).toEqual([]);
  });

  it('hands out STUN as is and TURN with `<expiry>:<userId>` and base64 HMAC-SHA1 under TURN_SECRET', () => {
    const { turn } = config({ TURN_URLS: 'stun:turn.example.com:3478, turn:turn.example.com:3478?transport=udp,turns:turn.example.com:5349', TURN_SECRET: 's3cret', TURN_CREDENTIAL_TTL: '2h' }).calls;
    const now = Date.UTC(2026, 0, 1);
    const [stun, relay] = iceServersFor(turn, 'user-1', now);
    expect(stun).toEqual({ urls: ['stun:turn.example.com:3478'], username: null, credential: null });
    const expiry = now / 1000 + 2 * 3600;
    expect(relay).toEqual({
      urls: ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349'],
      username: `${expiry}:user-1`,
      credential: createHmac('sha1', 's3cret').update(`${expiry}:user-1`).digest('base64'),
    });
  });

  it('defaults the credential lifetime to an hour', () => {
    const { turn } = config({ TURN_URLS: 'turn:t.example.com', TURN_SECRET: 'x' }).calls;
    const [relay] = iceServersFor(turn, 'u', 0);
    expect(relay!.username).toBe('3600:u');
  });

  it('refuses URLs that are not STUN or TURN, and TURN without a secret', () => {
    expect(() => config({ TURN_URLS: 'http://turn.example.com' })).toThrow(/TURN_URLS: not a stun:, turn: or turns: URL/);
    expect(() => config({ TURN_URLS: 'turn:turn.example.com' })).toThrow(/TURN_SECRET: required with turn: URLs/);
    expect(config({ TURN_URLS: 'stun:stun.example.com' }).calls.turn.urls).toEqual(['stun:stun.example.com']);
  });

  it('reads the ringing and reconnect times in seconds', () => {
    const defaults = config({}).calls;
    expect([defaults.ringMs, defaults.reconnectMs]).toEqual([45_000, 20_000]);
    expect(config({ CALL_RING_SECONDS: '1.5', CALL_RECONNECT_SECONDS: '5' }).calls).toMatchObject({ ringMs: 1_500, reconnectMs: 5_000 });
    expect(() => config({ CALL_RING_SECONDS: '0' })).toThrow(/CALL_RING_SECONDS/);
  });
});
