// STUN/TURN servers for call peers, with short-lived TURN credentials in the TURN REST API
// convention that coturn's `use-auth-secret` checks: the username is `<expiry>:<userId>` (expiry
// in Unix seconds) and the credential is base64(HMAC-SHA1(TURN_SECRET, username)). The TURN
// server needs no database of users, and a leaked credential stops working at its expiry.
import { createHmac } from 'node:crypto';
import type { Config } from '../env.ts';

export interface IceServer {
  urls: string[];
  username: string | null;
  credential: string | null;
}

export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/** What `iceServers` answers: STUN URLs as they are, TURN URLs with credentials valid `credentialTtlMs` from `now`. */
export function iceServersFor(turn: Config['calls']['turn'], userId: string, now = Date.now()): IceServer[] {
  const stun = turn.urls.filter((url) => url.startsWith('stun:'));
  const relays = turn.urls.filter((url) => !url.startsWith('stun:'));
  const servers: IceServer[] = [];
  if (stun.length > 0) servers.push({ urls: stun, username: null, credential: null });
  if (relays.length > 0 && turn.secret) {
    const username = `${Math.floor((now + turn.credentialTtlMs) / 1000)}:${userId}`;
    servers.push({ urls: relays, username, credential: turnCredential(turn.secret, username) });
  }
  return servers;
}
