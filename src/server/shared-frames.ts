// Frames written straight to the socket. graphql-ws sends each result of a subscription as its own
// `next` message: per subscriber and event, an async iteration through envelop's result hooks,
// graphql-ws's emit, a JSON.stringify of the whole message, and a send it awaits. For one event
// reaching a thousand local subscribers that was most of the fan-out's JavaScript (bench/RESULTS.md,
// "Direct frames"). A result without errors needs none of it: the result hooks act on errors only
// (masking, error logging, the error counters), and the payload is the same for every subscriber
// sharing the execution (shared-execution.ts). So a subscription over graphql-ws registers its
// socket and operation id here, and shared-execution.ts writes each error-free result as that
// operation's frame: the payload serialised once per result, each frame only its own
// `{"id":…,"type":"next","payload":` around those bytes. graphql-ws meanwhile waits on the stream's
// pending `next()`, which settles only with what still goes its way (a result with errors, the
// end, a failure), so those come after every frame written before them.
import type { ExecutionResult } from 'graphql';
import type { WebSocket } from 'ws';

/**
 * Bytes a socket may have queued and not yet handed to the kernel before a subscription writing to
 * it is ended with UNAVAILABLE (its client resubscribes with sinceSeq): a reader that stopped
 * reading must not grow the server's memory without bound. ~2,000 short messages.
 */
export const SOCKET_BACKLOG_MAX_BYTES = 1024 * 1024;

/** What became of a frame: written, not written because the socket is closing, or not written because its reader is too far behind. */
export type FrameWrite = 'sent' | 'closed' | 'behind';

export interface FrameSink {
  /** Writes an error-free `result` as the operation's `next` frame. */
  write(result: ExecutionResult): FrameWrite;
}

const CLOSE = Buffer.from('}');
/** Each result's payload as JSON bytes; dropped with the result. */
const payloads = new WeakMap<object, Buffer>();
/** The sink of a subscription, by its operation context. */
const sinks = new WeakMap<object, FrameSink>();

/** The subscription whose context is `context` runs as `operationId` on `socket`: its error-free results may be written directly. */
export function attachFrameSink(context: object, socket: WebSocket, operationId: string): void {
  // graphql-ws's own serialisation of a `next` message, up to its payload.
  const prefix = Buffer.from(`{"id":${JSON.stringify(operationId)},"type":"next","payload":`);
  sinks.set(context, {
    write(result) {
      if (socket.readyState !== socket.OPEN) return 'closed';
      if (socket.bufferedAmount > SOCKET_BACKLOG_MAX_BYTES) return 'behind';
      let payload = payloads.get(result);
      if (!payload) payloads.set(result, (payload = Buffer.from(JSON.stringify(result))));
      // A text frame, as graphql-ws clients expect, though the data is a Buffer.
      socket.send(Buffer.concat([prefix, payload, CLOSE]), { binary: false });
      return 'sent';
    },
  });
}

export function frameSinkOf(context: unknown): FrameSink | undefined {
  return context !== null && typeof context === 'object' ? sinks.get(context) : undefined;
}
