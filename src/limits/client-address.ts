// The address a client is counted under by the per-address limits. It comes from the socket, or,
// behind TRUST_PROXY hops, from the X-Forwarded-For entry the outermost trusted proxy appended: the
// entries left of it are whatever the client sent and prove nothing.
import { isIPv6 } from 'node:net';

/** What an in-process request (no socket, e.g. `yoga.fetch` in tests) is counted as. */
export const LOCAL_ADDRESS = 'local';

/**
 * `socketAddress` is the peer of the TCP connection; `forwardedFor` the X-Forwarded-For header(s).
 * With `trustedHops` proxies in front, the client is the entry that many places from the right of the
 * chain `forwardedFor..., socketAddress` (or the leftmost, when the chain is shorter).
 */
export function clientAddressOf(socketAddress: string | undefined, forwardedFor: string | null | undefined, trustedHops: number): string {
  const socket = socketAddress ? normalize(socketAddress) : LOCAL_ADDRESS;
  if (trustedHops === 0) return socket;
  const forwarded = (forwardedFor ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const chain = [...forwarded, socket];
  return normalize(chain[Math.max(0, chain.length - 1 - trustedHops)]!);
}

/**
 * IPv4-mapped IPv6 as plain IPv4; other IPv6 addresses by their /64, which one host or home gets
 * whole (counting single addresses would give it 2^64 of them). Anything else as given, bounded.
 */
function normalize(address: string): string {
  const bare = address.replace(/^\[|\](:\d+)?$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1]!;
  if (!isIPv6(bare)) return bare.slice(0, 64);
  return `${expandIPv6(bare).slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
}
