// A request Yoga cannot parse is the client's mistake: BAD_REQUEST (HTTP 400), whatever parser
// failed, and without the parser's own text. Yoga's parsers throw GraphQL errors for most of it
// (a malformed JSON body with the SyntaxError's message in `extensions.originalError`), but a
// GET with malformed `variables` or `extensions` JSON threw the bare SyntaxError, masked as INTERNAL.
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

const badRequest = (message = 'The request could not be parsed: its variables, extensions or form data are malformed.') =>
  new GraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });

/** Yoga's error without the parser's text; its HTTP status stays 400 (Yoga answers 200 to an application/json client once `originalError` is gone, unless the status is plain). */
function withoutParserText(error: GraphQLError): GraphQLError {
  return error.extensions.originalError === undefined ? error : badRequest(error.message);
}

/** Register after every other plugin that replaces the request parser, so this one wraps them all. */
export function useRequestParseErrors(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          throw error instanceof Error && error.name === 'GraphQLError' ? withoutParserText(error as GraphQLError) : badRequest();
        }
      });
    },
  };
}
