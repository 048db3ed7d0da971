// Request bodies as the body-limit plugins see them: which parser a body goes to, a body read
// through a counter, and an answer that must close its connection.
import type { GraphQLError } from 'graphql';

export const isMultipart = (request: Request) => /^multipart\/form-data\b/i.test(request.headers.get('content-type') ?? '');

/**
 * Node keeps a connection whose request body was left half read, and the client's next request on
 * it then hangs: an answer given before the body's end closes the connection.
 */
export function closingConnection(error: unknown): unknown {
  const extensions = (error as Partial<GraphQLError> | null)?.extensions;
  if (!extensions) return error;
  const http = (extensions.http ?? {}) as { status?: number; headers?: Record<string, string> };
  Object.assign(extensions, { http: { ...http, headers: { ...http.headers, Connection: 'close' } } });
  return error;
}

/** `request` with `body` streamed in place of its own (for a parser to read through a counter). */
export function withBody(fetchAPI: { Request: typeof Request }, request: Request, body: AsyncIterable<Uint8Array>): Request {
  return new fetchAPI.Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body: body as unknown as BodyInit,
    duplex: 'half',
  } as RequestInit);
}
