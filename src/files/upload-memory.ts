// The process-wide budget for upload bytes held in memory (UPLOAD_MEMORY_BYTES). Yoga keeps every
// uploaded file in memory until its request ends, so without a cap enough concurrent uploads take
// the process down however small each one is. A request leases bytes before it holds them — its
// declared Content-Length, or its body as it arrives, plus an image's working copies — and gives
// them all back when it ends. Requests that find no room wait in line briefly, then get
// RATE_LIMITED (HTTP 429): a burst is smoothed over, an overload is refused, nothing piles up.
import { rateLimited, withHttpStatus } from '../errors.ts';

/** How long a lease waits for room, in all, before it is refused. */
export const UPLOAD_MEMORY_WAIT_MS = 2_000;

export interface UploadMemory {
  readonly limitBytes: number;
  /** Bytes leased now, by every upload in progress. */
  readonly heldBytes: number;
  /** Leases waiting for room. */
  readonly waiting: number;
  /** A new, empty lease for one request. */
  lease(): UploadLease;
}

export interface UploadLease {
  readonly heldBytes: number;
  /**
   * Takes `bytes` more, waiting in line for room while the lease's wait time lasts (it is spent over
   * all its grows, so a body that arrives in pieces waits no longer than a declared one); rejects
   * with RATE_LIMITED when no room comes, or with the signal's reason when it aborts (the client
   * left). Never holds a part.
   */
  grow(bytes: number, signal?: AbortSignal): Promise<void>;
  /** Gives back everything held; safe to call more than once. The lease is spent afterwards. */
  release(): void;
}

interface Waiter {
  bytes: number;
  grant(): void;
}

export interface UploadMemoryOptions {
  limitBytes: number;
  /** Default UPLOAD_MEMORY_WAIT_MS. */
  waitMs?: number;
}

const busy = (waitMs: number) => {
  const retryAfterSeconds = Math.max(1, Math.ceil(waitMs / 1_000));
  return withHttpStatus(
    rateLimited('The server is receiving too many uploads at once. Try again in a moment.', retryAfterSeconds),
    429,
    { 'Retry-After': String(retryAfterSeconds) },
  );
};

export function createUploadMemory({ limitBytes, waitMs = UPLOAD_MEMORY_WAIT_MS }: UploadMemoryOptions): UploadMemory {
  let held = 0;
  // First come, first served: a large request at the head is not overtaken by a stream of small
  // ones, so it cannot starve while the budget never quite frees up enough for it.
  const line: Waiter[] = [];

  function admit() {
    while (line.length > 0 && held + line[0]!.bytes <= limitBytes) {
      const waiter = line.shift()!;
      held += waiter.bytes;
      waiter.grant();
    }
  }

  function give(bytes: number) {
    held -= bytes;
    admit();
  }

  function take(bytes: number, signal: AbortSignal | undefined, patienceMs: number): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (line.length === 0 && held + bytes <= limitBytes) {
      held += bytes;
      return Promise.resolve();
    }
    // More than the whole budget never fits (env.ts keeps one largest upload within it).
    if (bytes > limitBytes || patienceMs <= 0) return Promise.reject(busy(waitMs));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: () => {
          stopWaiting();
          resolve();
        },
      };
      const giveUp = (error: unknown) => {
        line.splice(line.indexOf(waiter), 1);
        stopWaiting();
        reject(error);
        // The head giving up may make room for those behind it.
        admit();
      };
      const onAbort = () => giveUp(signal!.reason);
      const timer = setTimeout(() => giveUp(busy(waitMs)), patienceMs);
      function stopWaiting() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      line.push(waiter);
    });
  }

  function lease(): UploadLease {
    let leased = 0;
    let released = false;
    let patienceMs = waitMs;
    return {
      get heldBytes() {
        return leased;
      },
      async grow(bytes, signal) {
        if (bytes <= 0) return;
        if (released) throw new Error('This upload lease was released.');
        const started = performance.now();
        try {
          await take(bytes, signal, patienceMs);
        } finally {
          patienceMs -= performance.now() - started;
        }
        // Granted after the request ended (its release ran while this waited): not ours to keep.
        if (released) {
          give(bytes);
          throw new Error('This upload lease was released.');
        }
        leased += bytes;
      },
      release() {
        released = true;
        const bytes = leased;
        leased = 0;
        if (bytes > 0) give(bytes);
      },
    };
  }

  return {
    limitBytes,
    get heldBytes() {
      return held;
    },
    get waiting() {
      return line.length;
    },
    lease,
  };
}
