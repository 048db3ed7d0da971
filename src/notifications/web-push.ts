// One Web Push request (RFC 8030) with an aes128gcm-encrypted payload (RFC 8291) and VAPID
// (RFC 8292), through the `web-push` package, on an agent that connects only to public addresses
// (endpoints.ts) and never follows a redirect.
import type { AgentOptions } from 'node:https';
import { isIP } from 'node:net';
import webpush, { WebPushError } from 'web-push';
import type { Config } from '../env.ts';
import { createPushAgent, endpointHost, isPublicAddress, parsePushEndpoint, REFUSED_ADDRESS, type EndpointPolicy } from './endpoints.ts';

export interface PushTarget {
  endpoint: string;
  p256dh: string;
  auth: string;
}

export interface PushOptions {
  /** Push services replace a pending message with the same topic (collapse). At most 32 base64url characters. */
  topic: string;
  /** Seconds the push service keeps the message for an unreachable device. */
  ttlSeconds: number;
  urgency: 'very-low' | 'low' | 'normal' | 'high';
}

export type PushOutcome =
  | { kind: 'sent'; statusCode: number }
  /** 404/410: the subscription is gone for good; delete it. */
  | { kind: 'gone'; statusCode: number }
  /** 429, 5xx or a network failure: try again later. */
  | { kind: 'retry'; statusCode: number | null; retryAfterSeconds: number | null; reason: string }
  /** Any other refusal (bad request, payload too large, VAPID mismatch, a redirect): retrying will not help. */
  | { kind: 'rejected'; statusCode: number; reason: string }
  /** Not sent: the endpoint is no URL we send to, or its host has no public address now. Nothing was connected to. */
  | { kind: 'refused'; statusCode: null; reason: string };

export type PushSender = (target: PushTarget, payload: string, options: PushOptions) => Promise<PushOutcome>;

export interface PushSenderOptions {
  vapid: Config['push']['vapid'];
  /** Which addresses pushes may connect to (PUSH_ALLOW_PRIVATE_ENDPOINTS, and a test resolver). */
  endpoints: EndpointPolicy;
  /** TLS options of the agent, e.g. the CA of a test push service. */
  tls?: Pick<AgentOptions, 'ca'>;
  /** Give up on a push service that does not answer. Default 10 s. */
  timeoutMs?: number;
}

/** How long a VAPID token we sign is valid (RFC 8292 allows up to 24 h). */
const VAPID_TOKEN_SECONDS = 12 * 3600;
/** A cached token is replaced this long before it expires. */
const VAPID_REFRESH_MARGIN_MS = 3600_000;

export function createPushSender({ vapid, endpoints, tls, timeoutMs = 10_000 }: PushSenderOptions): PushSender {
  const agent = createPushAgent(endpoints, tls);
  /** Why the endpoint may not be sent to before any socket opens; host names are checked by the agent as it connects. */
  const refusal = (endpoint: string): string | null => {
    let url: URL;
    try {
      url = parsePushEndpoint(endpoint);
    } catch (error) {
      return (error as Error).message;
    }
    const host = endpointHost(url);
    return isIP(host) && !endpoints.allowPrivate && !isPublicAddress(host) ? `push endpoint address ${host} is not public` : null;
  };
  // Signing a VAPID token is the costliest part of a push; one token per push service serves every
  // push to it for hours.
  const tokens = new Map<string, { headers: Record<string, string>; refreshAt: number }>();
  const vapidHeaders = (endpoint: string) => {
    const audience = new URL(endpoint).origin;
    const cached = tokens.get(audience);
    if (cached && cached.refreshAt > Date.now()) return cached.headers;
    const expiration = Math.floor(Date.now() / 1000) + VAPID_TOKEN_SECONDS;
    const headers = webpush.getVapidHeaders(audience, vapid.subject, vapid.publicKey, vapid.privateKey, 'aes128gcm', expiration) as Record<string, string>;
    tokens.set(audience, { headers, refreshAt: expiration * 1000 - VAPID_REFRESH_MARGIN_MS });
    return headers;
  };

  return async (target, payload, options) => {
    const refused = refusal(target.endpoint);
    if (refused) return { kind: 'refused', statusCode: null, reason: refused };
    try {
      const result = await webpush.sendNotification(
        { endpoint: target.endpoint, keys: { p256dh: target.p256dh, auth: target.auth } },
        payload,
        {
          headers: vapidHeaders(target.endpoint),
          TTL: options.ttlSeconds,
          urgency: options.urgency,
          topic: options.topic,
          contentEncoding: 'aes128gcm',
          timeout: timeoutMs,
          agent,
        },
      );
      return { kind: 'sent', statusCode: result.statusCode };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === REFUSED_ADDRESS) return { kind: 'refused', statusCode: null, reason: (error as Error).message };
      if (!(error instanceof WebPushError)) {
        return { kind: 'retry', statusCode: null, retryAfterSeconds: null, reason: error instanceof Error ? error.message : String(error) };
      }
      const { statusCode } = error;
      if (statusCode === 404 || statusCode === 410) return { kind: 'gone', statusCode };
      // web-push never follows one, and neither do we: a redirect could point anywhere.
      if (statusCode >= 300 && statusCode < 400) return { kind: 'rejected', statusCode, reason: `push service answered a redirect (${statusCode}), which is not followed` };
      if (statusCode === 429 || statusCode >= 500) {
        const retryAfter = Number(error.headers?.['retry-after']);
        return { kind: 'retry', statusCode, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : null, reason: `push service answered ${statusCode}` };
      }
      return { kind: 'rejected', statusCode, reason: `push service answered ${statusCode}: ${String(error.body).slice(0, 200)}` };
    }
  };
}
