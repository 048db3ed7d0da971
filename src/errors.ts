// The few errors a client can see. Each has a stable `extensions.code`; anything else thrown
// by a resolver is masked by Yoga as INTERNAL and logged with the request id.
import { GraphQLError } from 'graphql';

/** The codes our code raises; README "Errors" lists these and the ones Yoga and the HTTP layer add. */
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

/**
 * What a client does about an UNAUTHENTICATED: TOKEN_EXPIRED refresh the access token; TOKEN_INVALID
 * and SESSION_ENDED sign in again; SIGN_IN_REQUIRED send a token; WRONG_CREDENTIALS say so.
 */
export type UnauthenticatedReason = 'TOKEN_EXPIRED' | 'TOKEN_INVALID' | 'SESSION_ENDED' | 'SIGN_IN_REQUIRED' | 'WRONG_CREDENTIALS';

/** One invalid input field: `extensions.fields` lists them all, `extensions.field` is the first's. */
export interface FieldProblem {
  field: string;
  message: string;
}

function clientError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

export const unauthenticated = (reason: UnauthenticatedReason, message = 'Sign in to do this.') => clientError('UNAUTHENTICATED', message, { reason });

export const forbidden = (message = 'You are not allowed to do this.') => clientError('FORBIDDEN', message);

export const notFound = (what: string) => clientError('NOT_FOUND', `${what} not found.`);

/** The extensions of a BAD_USER_INPUT: every problem in `fields`, the first one's field as `field`. */
export const badUserInputExtensions = (problems: [FieldProblem, ...FieldProblem[]]) => ({ code: 'BAD_USER_INPUT', field: problems[0].field, fields: problems });

/** `field` names the offending input field (e.g. `input.email`) so clients can highlight it. */
export const badUserInput = (field: string, message: string) => invalidFields([{ field, message }]);

/** Every invalid field of an input at once; the message is the first one's. */
export const invalidFields = (problems: [FieldProblem, ...FieldProblem[]]) =>
  new GraphQLError(problems[0].message, { extensions: badUserInputExtensions(problems) });

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
