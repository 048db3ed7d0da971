// Per-address limits on graphql-ws connections, applied to the upgrade request before a socket
// exists: at most WS_MAX_UNAUTHENTICATED_PER_ADDRESS sockets of one address (on this instance) that
// have not authenticated yet, and RATE_LIMIT_WS_CONNECT attempts (shared through Redis). Refusals
// are HTTP 429 with Retry-After, so no socket is ever opened for them. RATE_LIMITS=off lifts both.
import type { IncomingMessage } from 'node:http';
import type { VerifyClientCallbackAsync } from 'ws';
import { clientAddressOf } from '../limits/client-address.ts';
import type { Services } from '../services.ts';

export function createAddressGate({ config, rateLimits }: Pick<Services, 'config' | 'rateLimits'>) {
  const { maxUnauthenticatedPerAddress } = config.limits.webSocket;
  const unauthenticated = new Map<string, number>();
  /** Per accepted upgrade request: its address, and how to stop counting it as unauthenticated. */
  const pending = new WeakMap<IncomingMessage, { address: string; release: () => void }>();

  const of = (request: IncomingMessage) =>
    pending.get(request)?.address ??
    clientAddressOf(request.socket.remoteAddress, request.headers['x-forwarded-for']?.toString(), config.limits.trustProxyHops);

  const count = (address: string, request: IncomingMessage) => {
    unauthenticated.set(address, (unauthenticated.get(address) ?? 0) + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (unauthenticated.get(address) ?? 1) - 1;
      if (left > 0) unauthenticated.set(address, left);
      else unauthenticated.delete(address);
    };
    // However the connection ends (refused, timed out, closed), it stops counting.
    request.socket.once('close', release);
    pending.set(request, { address, release });
  };

  const verifyClient: VerifyClientCallbackAsync<IncomingMessage> = ({ req }, accept) => {
    const address = of(req);
    if (!rateLimits.enabled) {
      pending.set(req, { address, release: () => {} });
      return accept(true);
    }
    if ((unauthenticated.get(address) ?? 0) >= maxUnauthenticatedPerAddress) {
      return accept(false, 429, 'Too many connections from your address are not authenticated yet', { 'Retry-After': '10' });
    }
    // Counted now, not once the attempt is allowed: concurrent upgrades cannot all slip under the cap.
    count(address, req);
    rateLimits.take('wsConnect', address).then(
      (outcome) => {
        if (outcome.allowed) return accept(true);
        pending.get(req)?.release();
        accept(false, 429, 'Too many connection attempts from your address', { 'Retry-After': String(outcome.retryAfterSeconds) });
      },
      () => {
        pending.get(req)?.release();
        accept(false, 503, 'Try again in a moment');
      },
    );
  };

  return {
    verifyClient,
    /** The address the upgrade request was counted under. */
    of,
    /** The socket authenticated: it no longer counts against its address's unauthenticated cap. */
    authenticated: (request: IncomingMessage) => pending.get(request)?.release(),
  };
}
