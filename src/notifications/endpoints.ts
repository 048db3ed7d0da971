// Push endpoints are URLs clients give us and the server then POSTs to, so they are an SSRF
// vector: only https URLs whose host is on a public unicast address. Checked at registration, and
// at delivery by the connection itself: the HTTPS agent's `lookup` resolves the host and hands
// the socket only addresses that pass, so DNS changing between check and connect (rebinding)
// reaches nothing private. PUSH_ALLOW_PRIVATE_ENDPOINTS is the only way around it.
import { lookup as dnsLookup } from 'node:dns/promises';
import { Agent, type AgentOptions } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { badUserInput } from '../errors.ts';

export const ENDPOINT_MAX_LENGTH = 2_048;

/** A host name's addresses (IPv4 or IPv6 text); tests pass one that answers without DNS. */
export type HostResolver = (host: string) => Promise<string[]>;

export interface EndpointPolicy {
  /** PUSH_ALLOW_PRIVATE_ENDPOINTS: any address (development and tests only). */
  allowPrivate: boolean;
  /** Default: the system resolver, cached a minute. */
  resolve?: HostResolver;
}

/** IANA's global unicast space, the only IPv6 unicast allocated; the rest of ::/8 (IPv4-compatible `::7f00:1`) is reserved. */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR('2000::/3');

/**
 * Whether the server may connect to `address`: only ipaddr.js's `unicast` range of either family.
 * `process()` turns IPv4-mapped IPv6 (`::ffff:127.0.0.1`) into the IPv4 address it carries first;
 * every range it names (loopback, private, linkLocal, carrierGradeNat, reserved, multicast,
 * uniqueLocal, rfc6052 NAT64, 6to4, teredo, ...) is refused, and IPv6 outside 2000::/3 too.
 */
export function isPublicAddress(address: string): boolean {
  if (!isIP(address)) return false;
  const parsed = ipaddr.process(address);
  if (parsed.range() !== 'unicast') return false;
  return parsed.kind() === 'ipv4' || (parsed as ipaddr.IPv6).match(GLOBAL_UNICAST_V6);
}

/** The host of an endpoint URL without IPv6 brackets (the URL parser has canonicalised IPv4 forms). */
export const endpointHost = (url: URL) => url.hostname.replace(/^\[|\]$/g, '');

const refusal = (why: string) => badUserInput('input.endpoint', `Push endpoint ${why}.`);

/** The endpoint as a URL if it is one we could send to at all (https, no credentials); throws BAD_USER_INPUT otherwise. */
export function parsePushEndpoint(endpoint: string): URL {
  if (endpoint.length > ENDPOINT_MAX_LENGTH) throw refusal('is too long');
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw refusal('must be a URL');
  }
  if (url.protocol !== 'https:') throw refusal('must use https');
  if (url.username || url.password) throw refusal('must not carry credentials');
  return url;
}

/**
 * At registration: the endpoint as a URL if every address its host has now is public;
 * BAD_USER_INPUT (field `input.endpoint`) otherwise. Delivery checks again as it connects.
 */
export async function checkPushEndpoint(endpoint: string, policy: EndpointPolicy): Promise<URL> {
  const url = parsePushEndpoint(endpoint);
  if (policy.allowPrivate) return url;
  const host = endpointHost(url);
  const addresses = isIP(host) ? [host] : await (policy.resolve ?? cachedResolve)(host).catch(() => []);
  if (addresses.length === 0) throw refusal('host does not resolve');
  if (!addresses.every(isPublicAddress)) throw refusal('must be on a public address');
  return url;
}

/** Thrown (as the connection's error) when a push endpoint's host has no address the policy allows. */
export const REFUSED_ADDRESS = 'EPUSHADDRESS';

const refusedAddress = (host: string) =>
  Object.assign(new Error(`push endpoint host ${host} has no public address`), { code: REFUSED_ADDRESS });

/**
 * A `lookup` for sockets to push services: resolves the host and answers only the addresses the
 * policy allows, so the socket connects to nothing else. Sockets to an IP literal never call a
 * lookup: the sender checks those itself (web-push.ts).
 */
export function guardedLookup(policy: EndpointPolicy): LookupFunction {
  const resolve = policy.resolve ?? cachedResolve;
  return (hostname, options, callback) => {
    const family = ({ 4: 4, 6: 6, IPv4: 4, IPv6: 6 } as Record<string, number>)[String(options?.family)] ?? 0;
    const all = options?.all === true;
    resolve(hostname).then(
      (addresses) => {
        const allowed = addresses
          .filter((address) => policy.allowPrivate || isPublicAddress(address))
          .filter((address) => !family || isIP(address) === family);
        if (allowed.length === 0) callback(refusedAddress(hostname), all ? [] : '');
        else if (all) callback(null, allowed.map((address) => ({ address, family: isIP(address) })));
        else callback(null, allowed[0]!, isIP(allowed[0]!));
      },
      (error: NodeJS.ErrnoException) => callback(error, all ? [] : ''),
    );
  };
}

/** The HTTPS agent push requests go through: keep-alive, and connected only where the policy allows. */
export function createPushAgent(policy: EndpointPolicy, tls: Pick<AgentOptions, 'ca'> = {}): Agent {
  return new Agent({ ...tls, keepAlive: true, lookup: guardedLookup(policy) });
}

/** Push services are few hosts with many pushes: their addresses are looked up once a minute. */
const ADDRESS_CACHE_MS = 60_000;
const addressCache = new Map<string, { addresses: Promise<string[]>; until: number }>();

/** The system resolver's addresses of `host` (all families), cached; a failure is not cached. */
function cachedResolve(host: string): Promise<string[]> {
  const cached = addressCache.get(host);
  if (cached && cached.until > Date.now()) return cached.addresses;
  const addresses = dnsLookup(host, { all: true }).then((found) => found.map((a) => a.address));
  if (addressCache.size > 1_000) addressCache.clear();
  addressCache.set(host, { addresses, until: Date.now() + ADDRESS_CACHE_MS });
  addresses.catch(() => addressCache.delete(host));
  return addresses;
}
