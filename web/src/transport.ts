// Queries and mutations over HTTP with urql (its fetch exchange also sends file uploads as
// GraphQL multipart requests), and API errors turned into sentences for people.
import { Client, fetchExchange, type AnyVariables, type CombinedError, type TypedDocumentNode } from '@urql/core';

export const http = new Client({
  url: '/graphql',
  exchanges: [fetchExchange],
  // Every request asks the server; the app keeps its own state from the answers and live events.
  requestPolicy: 'network-only',
  preferGetMethod: false,
});

/** An API error, in words a person can act on; `code` is the API's `extensions.code`. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    message: string,
    readonly code?: string,
    readonly field?: string,
    /** The error's other `extensions` (a CONFLICT's `callId`, say). */
    readonly extensions: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
  }
}

/** The first error of a result, as an ApiError: the server's messages are written for people. */
export function apiErrorOf(error: CombinedError): ApiError {
  if (error.networkError || error.graphQLErrors.length === 0) {
    return new ApiError('Cannot reach the server. Check your connection and try again.', 'NETWORK');
  }
  const first = error.graphQLErrors[0]!;
  const { code, field, retryAfterSeconds } = first.extensions as { code?: string; field?: string; retryAfterSeconds?: number };
  if (code === 'INTERNAL') return new ApiError('Something went wrong on the server. Please try again.', code);
  if (code === 'RATE_LIMITED' && retryAfterSeconds) return new ApiError(`${first.message} Try again in ${retryAfterSeconds} s.`, code);
  return new ApiError(first.message, code, field, first.extensions);
}

/** A words-first description of anything thrown, for the error banner. */
export function describe(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error && error.message) return error.message;
  return 'Something went wrong.';
}

/**
 * Runs a query or mutation; resolves with its data or rejects with an ApiError. `keepalive` lets
 * the request outlive the page (a hang-up as the tab closes).
 */
export async function run<Data, Variables extends AnyVariables>(
  document: TypedDocumentNode<Data, Variables>,
  variables: Variables,
  token?: string,
  { keepalive = false } = {},
): Promise<Data> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const fetchOptions = { headers, keepalive };
  const isMutation = document.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'mutation');
  const operation = isMutation ? http.mutation(document, variables, { fetchOptions }) : http.query(document, variables, { fetchOptions });
  const result = await operation.toPromise();
  if (result.error) throw apiErrorOf(result.error);
  if (!result.data) throw new ApiError('The server sent no data.');
  return result.data;
}
