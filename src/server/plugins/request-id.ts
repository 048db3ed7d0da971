import { randomUUID } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';

/** A client-supplied id is kept when it is this well-formed, so traces join across services. */
const WELL_FORMED = /^[A-Za-z0-9._:-]{8,128}$/;
const ids = new WeakMap<Request, string>();

/** The id of a request seen by `useRequestId` (a fresh one for anything else). */
export function requestIdOf(request: Request): string {
  let id = ids.get(request);
  if (!id) {
    const offered = request.headers.get('x-request-id');
    id = offered && WELL_FORMED.test(offered) ? offered : randomUUID();
    ids.set(request, id);
  }
  return id;
}

/** Gives every request an id and echoes it in the `x-request-id` response header. */
export function useRequestId(): Plugin {
  return {
    onRequest: ({ request }) => {
      requestIdOf(request);
    },
    onResponse: ({ request, response }) => {
      response.headers.set('x-request-id', requestIdOf(request));
    },
  };
}
