// How many signals a call may relay. Offers, answers and a few dozen ICE candidates per pair of
// devices make a call's set-up; a client that floods far beyond that is refused for a moment.
// TODO(#13): move onto the shared abuse-limits module once it lands (and count across instances);
// until then this is a per-instance token bucket per call behind the one function below.

/** Signals a call may burst (an 8-device mesh sets up 28 pairs at once). */
const BURST = 1_000;
/** Signals per second refilled. */
const PER_SECOND = 200;
/** Buckets of calls idle this long are forgotten. */
const IDLE_MS = 60_000;

interface Bucket {
  tokens: number;
  at: number;
}

export type SignalLimiter = (callId: string, now?: number) => { allowed: true } | { allowed: false; retryAfterSeconds: number };

export function createSignalLimiter(): SignalLimiter {
  const buckets = new Map<string, Bucket>();
  let sweptAt = Date.now();
  return (callId, now = Date.now()) => {
    if (now - sweptAt > IDLE_MS) {
      for (const [id, bucket] of buckets) if (now - bucket.at > IDLE_MS) buckets.delete(id);
      sweptAt = now;
    }
    const bucket = buckets.get(callId) ?? { tokens: BURST, at: now };
    bucket.tokens = Math.min(BURST, bucket.tokens + ((now - bucket.at) / 1000) * PER_SECOND);
    bucket.at = now;
    buckets.set(callId, bucket);
    if (bucket.tokens < 1) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / PER_SECOND)) };
    bucket.tokens -= 1;
    return { allowed: true };
  };
}
