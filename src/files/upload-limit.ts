// Limits on multipart (upload) requests, applied before and while the body streams in: Yoga keeps
// each uploaded file in memory, so a body over the size limit is refused by its Content-Length
// before a byte is read, or cut off as soon as the counted bytes pass the limit (chunked bodies,
// lying clients) — never buffered whole. Both answer 413 with BAD_USER_INPUT on `file` and the
// limit in the message. Requests without credentials are refused before their body is read at all.
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { badUserInput, unauthenticated } from '../errors.ts';
import { formatBytes } from './uploads.ts';

/** Room for the multipart framing and the `operations` and `map` fields around the file. */
export const MULTIPART_OVERHEAD_BYTES = 64 * 1024;

/** Largest multipart body accepted for files of up to `maxUploadBytes`. */
export const multipartBodyLimit = (maxUploadBytes: number) => maxUploadBytes + MULTIPART_OVERHEAD_BYTES;

/** Yoga answers an error thrown while parsing with this HTTP status (and leaves `http` out of the body). */
function withStatus(error: GraphQLError, status: number): GraphQLError {
  Object.assign(error.extensions, { http: { status } });
  return error;
}

const uploadTooLarge = (maxUploadBytes: number) =>
  withStatus(badUserInput('file', `The file is larger than the upload limit of ${formatBytes(maxUploadBytes)}.`), 413);

const isMultipart = (request: Request) => /^multipart\/form-data\b/i.test(request.headers.get('content-type') ?? '');

/** Yoga's own body limit (`maxRequestBodySize`) counts outside this one and may stop the body first. */
const isYogaBodyLimit = (error: unknown) => (error as Partial<GraphQLError> | null)?.extensions?.code === 'REQUEST_ENTITY_TOO_LARGE';

export function useUploadLimits(maxUploadBytes: number): Plugin {
  const limit = multipartBodyLimit(maxUploadBytes);
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (!requestParser || !request.body || !isMultipart(request)) return;
      // Only uploadFile takes files, and it needs a signed-in user: no reason to receive 25 MiB first.
      if (!request.headers.get('authorization')) throw withStatus(unauthenticated('Sign in to upload files.'), 401);
      const declared = request.headers.get('content-length');
      if (declared && /^\d+$/.test(declared) && Number(declared) > limit) throw uploadTooLarge(maxUploadBytes);

      setRequestParser(async (incoming) => {
        let exceeded = false;
        const body = incoming.body as AsyncIterable<Uint8Array>;
        async function* counted() {
          let received = 0;
          try {
            for await (const chunk of body) {
              received += chunk.byteLength;
              if (received > limit) {
                exceeded = true;
                throw uploadTooLarge(maxUploadBytes);
              }
              yield chunk;
            }
          } catch (error) {
            if (isYogaBodyLimit(error)) exceeded = true;
            throw error;
          }
        }
        const limited = new fetchAPI.Request(incoming.url, {
          method: incoming.method,
          headers: incoming.headers,
          signal: incoming.signal,
          body: counted() as unknown as BodyInit,
          duplex: 'half',
        } as RequestInit);
        try {
          return await requestParser(limited);
        } catch (error) {
          // The multipart parser rewraps stream errors as "invalid multipart data"; say what happened.
          if (exceeded) throw uploadTooLarge(maxUploadBytes);
          throw error;
        }
      });
    },
  };
}
