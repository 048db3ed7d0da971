// Limits on multipart (upload) requests, applied before and while the body streams in: Yoga keeps
// each uploaded file in memory, so a body over the size limit is refused by its Content-Length
// before a byte is read, or cut off as soon as the counted bytes pass the limit (chunked bodies,
// lying clients) — never buffered whole. Both answer 413 with BAD_USER_INPUT on `file` and the
// limit in the message. Requests without credentials are refused before their body is read at all.
// What a body holds counts against the process-wide upload memory (upload-memory.ts) until its
// response is made: the declared Content-Length before reading, or each piece as it arrives.
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { badUserInput, unauthenticated, withHttpStatus } from '../../errors.ts';
import { closingConnection, isMultipart, withBody } from '../http-body.ts';
import type { UploadLease, UploadMemory } from '../../files/upload-memory.ts';
import { formatBytes, multipartBodyLimit } from '../../files/upload-sizes.ts';

const uploadTooLarge = (maxUploadBytes: number) =>
  withHttpStatus(badUserInput('file', `The file is larger than the upload limit of ${formatBytes(maxUploadBytes)}.`), 413);

/** Yoga's own body limit (`maxRequestBodySize`) counts outside this one and may stop the body first. */
const isYogaBodyLimit = (error: unknown) => (error as Partial<GraphQLError> | null)?.extensions?.code === 'REQUEST_ENTITY_TOO_LARGE';

export interface UploadLimitsOptions {
  /** MAX_UPLOAD_BYTES. */
  maxUploadBytes: number;
  /** MAX_UPLOADS_PER_REQUEST: files one request may carry. */
  maxUploadsPerRequest: number;
  /** The budget bodies are held under (UPLOAD_MEMORY_BYTES). */
  memory: UploadMemory;
}

const isFile = (value: unknown) => typeof value === 'object' && value !== null && 'stream' in value && 'size' in value && 'name' in value;

/** The files the multipart map put into the variables; one file the map points at twice is one object. */
function filesIn(value: unknown, found: unknown[] = []): unknown[] {
  // Duck-typed: Yoga's fetch ponyfill has a File class of its own.
  if (isFile(value)) found.push(value);
  else if (Array.isArray(value)) for (const item of value) filesIn(item, found);
  else if (value && typeof value === 'object') for (const item of Object.values(value)) filesIn(item, found);
  return found;
}

/** Each file once, at most `max` of them: one stored file per upload, however the map is written. */
function checkMappedFiles(params: unknown, max: number) {
  const files = filesIn(Array.isArray(params) ? params.map((one) => (one as { variables?: unknown }).variables) : (params as { variables?: unknown }).variables);
  if (new Set(files).size < files.length) {
    throw badUserInput('map', 'The multipart map points more than one variable at the same file: send each file for one variable.');
  }
  if (files.length > max) throw badUserInput('map', `At most ${max} files per request (MAX_UPLOADS_PER_REQUEST), got ${files.length}.`);
}

export function useUploadLimits({ maxUploadBytes, maxUploadsPerRequest, memory }: UploadLimitsOptions): Plugin {
  const limit = multipartBodyLimit(maxUploadBytes);
  // Each multipart request's share, released when its response is made: the parsed file lives that long.
  const leases = new WeakMap<Request, UploadLease>();
  return {
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (!requestParser || !request.body || !isMultipart(request)) return;
      // Only uploadFile takes files, and it needs a signed-in user: no reason to receive 25 MiB first.
      if (!request.headers.get('authorization')) throw withHttpStatus(unauthenticated('SIGN_IN_REQUIRED', 'Sign in to upload files.'), 401);
      const declaredHeader = request.headers.get('content-length');
      const declared = declaredHeader && /^\d+$/.test(declaredHeader) ? Number(declaredHeader) : undefined;
      if (declared !== undefined && declared > limit) throw uploadTooLarge(maxUploadBytes);
      const lease = memory.lease();
      leases.set(request, lease);

      setRequestParser(async (incoming) => {
        // Why the body stopped, when we stopped it: the multipart parser rewraps stream errors as
        // "invalid multipart data".
        let refusal: unknown;
        let halfRead = false;
        const body = incoming.body as AsyncIterable<Uint8Array>;
        async function* counted() {
          halfRead = true;
          let received = 0;
          try {
            for await (const chunk of body) {
              received += chunk.byteLength;
              if (received > limit) throw (refusal = uploadTooLarge(maxUploadBytes));
              // A chunked body (or one running past its Content-Length) leases what it has read.
              if (received > lease.heldBytes) {
                await lease.grow(received - lease.heldBytes, incoming.signal).catch((error: unknown) => {
                  throw (refusal = error);
                });
              }
              yield chunk;
            }
            halfRead = false;
          } catch (error) {
            if (isYogaBodyLimit(error)) refusal ??= uploadTooLarge(maxUploadBytes);
            throw error;
          }
        }
        try {
          // A declared body is leased before a byte is read, so a request waiting for room holds nothing.
          if (declared !== undefined) await lease.grow(declared, incoming.signal);
          const params = await requestParser(withBody(fetchAPI, incoming, counted()));
          checkMappedFiles(params, maxUploadsPerRequest);
          return params;
        } catch (error) {
          // Nothing of a body that failed to parse is kept (client gone, too large, no room, malformed).
          lease.release();
          throw halfRead ? closingConnection(refusal ?? error) : (refusal ?? error);
        }
      });
    },
    onResponse({ request }) {
      leases.get(request)?.release();
    },
  };
}
