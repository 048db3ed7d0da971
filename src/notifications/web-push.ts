// One Web Push request (RFC 8030) with an aes128gcm-encrypted payload (RFC 8291) and VAPID
// (RFC 8292), through the `web-push` package.
import type { Agent } from 'node:https';
import webpush, { WebPushError } from 'web-push';
import type { Config } from '../env.ts';

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
  /** Any other refusal (bad request, payload too large, VAPID mismatch): retrying will not help. */
  | { kind: 'rejected'; statusCode: number; reason: string };

export type PushSender = (target: PushTarget, payload: string, options: PushOptions) => Promise<PushOutcome>;

export interface PushSenderOptions {
  vapid: Config['push']['vapid'];
  /** HTTPS agent, e.g. one that trusts a test push service's certificate. */
  agent?: Agent;
  /** Give up on a push service that does not answer. Default 10 s. */
  timeoutMs?: number;
}

export function createPushSender({ vapid, agent, timeoutMs = 10_000 }: PushSenderOptions): PushSender {
  const vapidDetails = { subject: vapid.subject, publicKey: vapid.publicKey, privateKey: vapid.privateKey };
  return async (target, payload, options) => {
    try {
      const result = await webpush.sendNotification(
        { endpoint: target.endpoint, keys: { p256dh: target.p256dh, auth: target.auth } },
        payload,
        { vapidDetails, TTL: options.ttlSeconds, urgency: options.urgency, topic: options.topic, contentEncoding: 'aes128gcm', timeout: timeoutMs, ...(agent ? { agent } : {}) },
      );
      return { kind: 'sent', statusCode: result.statusCode };
    } catch (error) {
      if (!(error instanceof WebPushError)) {
        return { kind: 'retry', statusCode: null, retryAfterSeconds: null, reason: error instanceof Error ? error.message : String(error) };
      }
      const { statusCode } = error;
      if (statusCode === 404 || statusCode === 410) return { kind: 'gone', statusCode };
      if (statusCode === 429 || statusCode >= 500) {
        const retryAfter = Number(error.headers?.['retry-after']);
        return { kind: 'retry', statusCode, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : null, reason: `push service answered ${statusCode}` };
      }
      return { kind: 'rejected', statusCode, reason: `push service answered ${statusCode}: ${String(error.body).slice(0, 200)}` };
    }
  };
}
