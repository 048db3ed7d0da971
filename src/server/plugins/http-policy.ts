// What every HTTP response tells browsers: CORS only for the origins CORS_ORIGINS lists (any in
// development), never with credentials (the API takes bearer tokens, not cookies, so a page of
// another origin never acts with a visitor's rights); and security headers.
import type { Plugin } from 'graphql-yoga';
import { GRAPHIQL_CSP } from '../graphiql.ts';

export type CorsOrigins = '*' | readonly string[];

const ALLOWED_METHODS = 'GET, POST, OPTIONS';
const EXPOSED_HEADERS = 'x-request-id, retry-after';
const PREFLIGHT_MAX_AGE_SECONDS = '600';

export function useCorsPolicy(origins: CorsOrigins): Plugin {
  const allows = (origin: string) => origins === '*' || origins.includes(origin);
  const corsHeaders = (origin: string) => ({
    'access-control-allow-origin': origins === '*' ? '*' : origin,
    'access-control-expose-headers': EXPOSED_HEADERS,
    vary: 'Origin',
  });
  return {
    onRequest({ request, fetchAPI, endResponse }) {
      if (request.method !== 'OPTIONS') return;
      const origin = request.headers.get('origin');
      if (origin === null) return endResponse(new fetchAPI.Response(null, { status: 204, headers: { allow: ALLOWED_METHODS } }));
      if (!allows(origin)) return endResponse(new fetchAPI.Response(null, { status: 403, headers: { vary: 'Origin' } }));
      const requested = request.headers.get('access-control-request-headers');
      endResponse(
        new fetchAPI.Response(null, {
          status: 204,
          headers: {
            ...corsHeaders(origin),
            'access-control-allow-methods': ALLOWED_METHODS,
            ...(requested ? { 'access-control-allow-headers': requested } : {}),
            'access-control-max-age': PREFLIGHT_MAX_AGE_SECONDS,
            'content-length': '0',
          },
        }),
      );
    },
    onResponse({ request, response }) {
      const origin = request.headers.get('origin');
      if (origin === null || !allows(origin) || request.method === 'OPTIONS') return;
      for (const [name, value] of Object.entries(corsHeaders(origin))) response.headers.set(name, value);
    },
  };
}

/**
 * On every response, unless a route set its own (file downloads and the web client have theirs);
 * an HTML page without one gets GraphiQL's, which allows nothing from another origin.
 */
export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      const headers = response.headers;
      if (!headers.has('x-content-type-options')) headers.set('x-content-type-options', 'nosniff');
      if (!headers.has('referrer-policy')) headers.set('referrer-policy', 'no-referrer');
      if (!headers.has('content-security-policy') && headers.get('content-type')?.startsWith('text/html')) {
        headers.set('content-security-policy', GRAPHIQL_CSP);
        headers.set('x-frame-options', 'DENY');
      }
    },
  };
}
