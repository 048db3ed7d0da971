// Yoga refuses a request it cannot take (a Content-Type it has no parser for, an Accept it cannot
// answer) with an empty body; a client then has a status and nothing to switch on. Those refusals
// get a GraphQL-shaped body with a code like every other error (README "Errors"). Its 405s (a
// method other than GET and POST, a mutation over GET) say BAD_REQUEST, which a client cannot tell
// from a malformed body: they say METHOD_NOT_ALLOWED.
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const REFUSALS: Record<number, { code: string; message: string }> = {
  406: { code: 'NOT_ACCEPTABLE', message: 'Accept application/graphql-response+json or application/json (see the accept header of this response).' },
  415: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Send application/json (or application/graphql, multipart/form-data, application/x-www-form-urlencoded), or use GET.' },
};

const isMethodRefusal = (error: unknown) =>
  error instanceof GraphQLError && (error.extensions.http as { status?: number } | undefined)?.status === 405;

const asMethodRefusal = (error: GraphQLError) => new GraphQLError(error.message, { extensions: { ...error.extensions, code: 'METHOD_NOT_ALLOWED' } });

/** Register first: later plugins' onResponse hooks (CORS, security headers) then see the new response. */
export function useHttpRefusalBodies(): Plugin {
  return {
    onResultProcess({ result, setResult }) {
      if (Array.isArray(result) || !('errors' in result) || !result.errors?.some(isMethodRefusal)) return;
      setResult({ ...result, errors: result.errors.map((error) => (isMethodRefusal(error) ? asMethodRefusal(error as GraphQLError) : error)) });
    },
    onResponse({ response, setResponse, fetchAPI }) {
      const refusal = REFUSALS[response.status];
      if (!refusal || response.body !== null) return;
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-type', 'application/json; charset=utf-8');
      const body = JSON.stringify({ errors: [{ message: refusal.message, extensions: { code: refusal.code } }] });
      setResponse(new fetchAPI.Response(body, { status: response.status, statusText: response.statusText, headers }));
    },
  };
}
