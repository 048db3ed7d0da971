// graphql-ws turns every `next` message into JSON on its own, so one result shared by N local
// subscribers (shared-execution.ts hands them the same object) was serialised N times. Here a result
// is serialised once, the first time a socket sends it, and each socket's frame is only its own
// `{"id":…,"type":"next","payload":` around those same bytes.
//
// How the bytes reach the frame: graphql-ws's onNext may replace the payload; the stand-in it gets
// serialises to a placeholder and, in the same synchronous step (JSON.stringify, then the socket's
// send, with nothing in between), leaves the payload for the socket's send, which splices it in.
import type { WebSocket } from 'ws';

const PLACEHOLDER = 'kocmoc:shared-payload';
const TAIL = `"payload":"${PLACEHOLDER}"}`;
const CLOSE = Buffer.from('}');

/** Each shared result's payload as JSON bytes; dropped with the result. */
const payloads = new WeakMap<object, Buffer>();
/** Left by a stand-in while its message is serialised; taken by the send that follows at once. */
let spliced: Buffer | undefined;

/**
 * For graphql-ws's onNext: a stand-in payload for `result`, or undefined to let graphql-ws serialise
 * it (a result with errors is masked per subscriber, so it is a new object each time).
 */
export function sharedPayload(result: object): object | undefined {
  if ('errors' in result && result.errors) return undefined;
  let bytes = payloads.get(result);
  if (!bytes) payloads.set(result, (bytes = Buffer.from(JSON.stringify(result))));
  const payload = bytes;
  return {
    toJSON() {
      spliced = payload;
      return PLACEHOLDER;
    },
  };
}

/** Lets `socket` send frames whose payload a stand-in left (see sharedPayload). Call before graphql-ws sees the socket. */
export function spliceSharedPayloads(socket: WebSocket): void {
  const send = socket.send.bind(socket) as (data: unknown, ...rest: unknown[]) => void;
  socket.send = ((data: unknown, ...rest: unknown[]) => {
    const payload = spliced;
    spliced = undefined;
    if (!payload || typeof data !== 'string' || !data.endsWith(TAIL)) return send(data, ...rest);
    const frame = Buffer.concat([Buffer.from(`${data.slice(0, -TAIL.length)}"payload":`), payload, CLOSE]);
    // A text frame, as graphql-ws clients expect, though the data is a Buffer.
    const callback = rest.find((arg) => typeof arg === 'function');
    return send(frame, { binary: false }, callback);
  }) as WebSocket['send'];
}
