// Push endpoints are URLs clients give us and the server then POSTs to: only public https hosts,
// checked at registration and again before each send (DNS can change in between).
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { badUserInput } from '../errors.ts';

export const ENDPOINT_MAX_LENGTH = 2_048;

/** Loopback, private, link-local, CGNAT, unique-local and other non-public ranges. */
export function isPrivateAddress(address: string): boolean {
  if (isIP(address) === 6) {
    const lower = address.toLowerCase();
    if (lower.startsWith('::ffff:')) return isPrivateAddress(lower.slice(7));
    return lower === '::1' || lower === '::' || /^(fc|fd|fe8|fe9|fea|feb)/.test(lower);
  }
  const [a, b] = address.split('.').map(Number) as [number, number];
  return (
    a === 10 || a === 127 || a === 0 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224
  );
}

/** The endpoint as a URL if the server may send to it; BAD_USER_INPUT (field `input.endpoint`) otherwise. */
export async function checkPushEndpoint(endpoint: string, { allowPrivate }: { allowPrivate: boolean }): Promise<URL> {
  const refuse = (why: string) => badUserInput('input.endpoint', `Push endpoint ${why}.`);
  if (endpoint.length > ENDPOINT_MAX_LENGTH) throw refuse('is too long');
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw refuse('must be a URL');
  }
  if (url.protocol !== 'https:') throw refuse('must use https');
  if (url.username || url.password) throw refuse('must not carry credentials');
  if (allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [host] : await addressesOf(host);
  if (addresses.length === 0) throw refuse('host does not resolve');
  if (addresses.some(isPrivateAddress)) throw refuse('must be on a public address');
  return url;
}

/** Push services are few hosts with many pushes: their addresses are looked up once a minute. */
const ADDRESS_CACHE_MS = 60_000;
const addressCache = new Map<string, { addresses: string[]; until: number }>();

async function addressesOf(host: string): Promise<string[]> {
  const cached = addressCache.get(host);
  if (cached && cached.until > Date.now()) return cached.addresses;
  const addresses = (await lookup(host, { all: true }).catch(() => [])).map((a) => a.address);
  if (addressCache.size > 1_000) addressCache.clear();
  addressCache.set(host, { addresses, until: Date.now() + ADDRESS_CACHE_MS });
  return addresses;
}
