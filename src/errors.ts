// The few errors a client can see. Each has a stable `extensions.code`; anything else thrown
// by a resolver is masked by Yoga as INTERNAL and logged with the request id.
import { GraphQLError } from 'graphql';

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'MAINTENANCE'
  | 'QUERY_TOO_COMPLEX'
  | 'UNAVAILABLE'
  | 'INTERNAL';

function clientError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

export const unauthenticated = (message = 'Sign in to do this.') => clientError('UNAUTHENTICATED', message);

export const forbidden = (message = 'You are not allowed to do this.') => clientError('FORBIDDEN', message);

export const notFound = (what: string) => clientError('NOT_FOUND', `${what} not found.`);

/** `field` names the offending input field (e.g. `input.email`) so clients can highlight it. */
export const badUserInput = (field: string, message: string) => clientError('BAD_USER_INPUT', message, { field });

/** `extensions` carries what the client needs to resolve it (e.g. `missingDeviceIds`). */
export const conflict = (field: string, message: string, extensions: Record<string, unknown> = {}) =>
  clientError('CONFLICT', message, { field, ...extensions });

export const rateLimited = (message: string, retryAfterSeconds?: number) =>
  clientError('RATE_LIMITED', message, retryAfterSeconds ? { retryAfterSeconds } : {});

/**
 * A document over one of the document limits (aliases, depth, tokens, directives, cost, uploads,
 * password mutations); `limit` names it and the message gives its value.
 */
export const queryTooComplex = (limit: string, message: string) => clientError('QUERY_TOO_COMPLEX', message, { limit });

/** Yoga turns `http` into the response status and headers of a plain POST (and strips it from the body). */
export function withHttpStatus(error: GraphQLError, status: number, headers?: Record<string, string>): GraphQLError {
  Object.assign(error.extensions, { http: headers ? { status, headers } : { status } });
  return error;
}

export const maintenance = (message: string, retryAfterSeconds: number) =>
  withHttpStatus(clientError('MAINTENANCE', message, { retryAfterSeconds }), 503, { 'Retry-After': String(retryAfterSeconds) });

/**
 * Something the operation needs (the database, the order of a chat's live events) is out of reach
 * for a moment: retry after `retryAfterSeconds`. A `messageEvents` subscription that ends with it is
 * resubscribed with `sinceSeq` set to the last `seq` received, and misses nothing.
 */
export const unavailable = (message: string, retryAfterSeconds = 1) => clientError('UNAVAILABLE', message, { retryAfterSeconds });

/** What a masked, unexpected error looks like to the client. */
export const internal = () => clientError('INTERNAL', 'Internal server error.');
