import { GraphQLError } from 'graphql';
import { useErrorHandler, type Plugin } from 'graphql-yoga';
import type { Context } from '../../context.ts';
import { WorkerPoolBusyError } from '../../cpu/pool.ts';
import { isDatabaseUnavailable } from '../../db/errors.ts';
import { badUserInputExtensions, internal, rateLimited, unavailable } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { INVALID_CURSOR, isCursorError } from '../../schema/input-guard.ts';

// By name, not instanceof: graphql ships CJS and ESM builds, and a bundler or test runner can
// load both, which gives two GraphQLError classes.
const isGraphQLError = (error: unknown): error is GraphQLError => error instanceof Error && error.name === 'GraphQLError';

/** An error the client was meant to see: one we threw on purpose, or a GraphQL validation error. */
export function isClientError(error: unknown): error is GraphQLError {
  return isGraphQLError(error) && (!error.originalError || isGraphQLError(error.originalError));
}

/** Pothos rejects malformed connection arguments (bad cursor, negative `first`) with this. */
const isPothosValidationError = (error: unknown) => error instanceof Error && error.name === 'PothosValidationError';

/** Infrastructure refusing work it has no room for: the client is told to come back, nothing is logged. */
const isOverload = (error: unknown): error is WorkerPoolBusyError => error instanceof WorkerPoolBusyError;

/** The client error an expected, non-GraphQL failure stands for, or undefined. */
function clientErrorFor(cause: unknown) {
  if (isOverload(cause)) return rateLimited('The server is busy. Try again in a moment.', cause.retryAfterSeconds);
  // PostgreSQL restarting or refusing connections: the client can retry; nothing is wrong with its request.
  if (isDatabaseUnavailable(cause)) return unavailable('The database is unavailable for a moment. Try again shortly.');
  return undefined;
}

/** graphql-js refusing a variable's value (an Int past 2^31, an unknown enum value, a wrong type): `Variable "$input" got invalid value ... at "input.login"; ...`. */
const VARIABLE_ERROR = /^Variable "\$([^"]+)" (?:got invalid value .*? at "([^"]+)";|got invalid value|of (?:required|non-null) type)/s;

/**
 * Client errors as they go out: variable values graphql-js refused get BAD_USER_INPUT naming the
 * variable (graphql-js gives them no code), and nothing carries `extensions.originalError` (Yoga
 * puts the JSON parser's text there for a malformed body).
 */
function asSent(error: GraphQLError): GraphQLError {
  const { originalError, ...extensions } = error.extensions;
  const variable = !extensions.code && !error.path ? VARIABLE_ERROR.exec(error.message) : null;
  if (variable) {
    const field = variable[2] ?? variable[1]!;
    return new GraphQLError(error.message, { nodes: error.nodes, extensions: { ...extensions, ...badUserInputExtensions([{ field, message: error.message }]) } });
  }
  if (originalError === undefined) return error;
  return new GraphQLError(error.message, { nodes: error.nodes, path: error.path, extensions });
}

/**
 * Yoga's `maskError`: our own errors pass, Pothos argument errors become BAD_USER_INPUT (a
 * cursor it cannot decode says only that), an overloaded worker pool becomes RATE_LIMITED, a
 * database out of reach UNAVAILABLE, and anything unexpected becomes a plain INTERNAL error (the
 * log has the details).
 */
export function maskError(error: unknown): Error {
  if (isClientError(error)) return asSent(error);
  const mapped = clientErrorFor(isGraphQLError(error) ? error.originalError : error);
  if (mapped) return isGraphQLError(error) ? new GraphQLError(mapped.message, { path: error.path, extensions: mapped.extensions }) : mapped;
  if (isGraphQLError(error) && isPothosValidationError(error.originalError)) {
    // A nested connection's cursor is decoded while its parent's query is planned (input-guard.ts names the field otherwise).
    if (isCursorError(error.originalError)) {
      return new GraphQLError(INVALID_CURSOR, { path: error.path, extensions: badUserInputExtensions([{ field: 'cursor', message: INVALID_CURSOR }]) });
    }
    // `Argument "first" must be a non-negative integer`: the argument, else the field's arguments as a whole.
    const field = /^Arguments? "(\w+)"/.exec(error.message)?.[1] ?? 'arguments';
    return new GraphQLError(error.message, { path: error.path, extensions: badUserInputExtensions([{ field, message: error.message }]) });
  }
  const masked = internal();
  return isGraphQLError(error) ? new GraphQLError(masked.message, { path: error.path, extensions: masked.extensions }) : masked;
}

/** Logs unexpected errors, with the request id, before they are masked. */
export function useErrorLogging(logger: Logger): Plugin {
  return useErrorHandler(({ errors, context, phase }) => {
    // In the execution phase `context` is the execution args; the request context is inside.
    const requestContext = (phase === 'execution' ? (context as { contextValue?: unknown }).contextValue : context) as Partial<Context> | undefined;
    const log = requestContext?.log ?? logger;
    for (const error of errors) {
      if (isClientError(error) || (isGraphQLError(error) && isPothosValidationError(error.originalError))) continue;
      const cause = isGraphQLError(error) ? (error.originalError ?? error) : error;
      // Expected under an outage, but an operator wants to see it happen.
      if (isDatabaseUnavailable(cause)) log.warn({ err: cause }, 'database unavailable');
      if (clientErrorFor(cause)) continue;
      log.error({ err: cause, path: isGraphQLError(error) ? error.path : undefined }, 'unexpected error');
    }
  }) as Plugin;
}
