// The size limit of GraphQL requests other than uploads (JSON and form-encoded bodies): their
// largest legitimate input is a few KiB, and each one is buffered whole before parsing, so the
// upload limit (25 MiB, which Yoga's own `maxRequestBodySize` must allow) would let a few hundred
// requests hold gigabytes. Multipart bodies have their own limits (upload-limits.ts).
import type { Plugin } from 'graphql-yoga';
import { badUserInput, withHttpStatus } from '../../errors.ts';
import { formatBytes } from '../../files/upload-sizes.ts';
import { closingConnection, isMultipart, withBody } from '../http-body.ts';

const tooLarge = (maxBytes: number) =>
  withHttpStatus(badUserInput('body', `The request body is larger than the limit of ${formatBytes(maxBytes)}.`), 413);

/**
 * A refused chunked body is read to its end (and dropped) up to this many times the limit: then
 * the answer comes on a connection that stays usable, where closing it with bytes unread would
 * reset it under the answer, and the client would never see why.
 */
const DRAIN_FACTOR = 8;

/** Reads and drops the rest of a body, up to `maxBytes` more; 'cut' if it was longer than that. */
async function drain(body: AsyncIterator<Uint8Array>, maxBytes: number): Promise<'drained' | 'cut'> {
  let dropped = 0;
  for (let next = await body.next(); !next.done; next = await body.next()) {
    dropped += next.value.byteLength;
    if (dropped > maxBytes) {
      await body.return?.();
      return 'cut';
    }
  }
  return 'drained';
}

/** Refuses (413, BAD_USER_INPUT) non-multipart bodies over `maxBytes`: by Content-Length before reading, or as a chunked body passes it. */
export function useRequestBodyLimit(maxBytes: number): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (!requestParser || !request.body || isMultipart(request)) return;
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        // Node's parser has already refused a malformed Content-Length (400) before we see it.
        if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
        return;
      }
      setRequestParser(async (incoming) => {
        const body = (incoming.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
        let refused: 'drained' | 'cut' | undefined;
        async function* counted() {
          let received = 0;
          for (let next = await body.next(); !next.done; next = await body.next()) {
            received += next.value.byteLength;
            if (received > maxBytes) {
              refused = await drain(body, maxBytes * DRAIN_FACTOR - received);
              throw tooLarge(maxBytes);
            }
            yield next.value;
          }
        }
        try {
          return await requestParser(withBody(fetchAPI, incoming, counted()));
        } catch (error) {
          // The JSON parser wraps stream errors; the client should hear why its body was refused.
          if (!refused) throw error;
          throw refused === 'cut' ? closingConnection(tooLarge(maxBytes)) : tooLarge(maxBytes);
        }
      });
    },
  };
}
