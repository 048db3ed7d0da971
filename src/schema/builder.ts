// The one SchemaBuilder: context type, scalars, plugins and relay options live here.
import SchemaBuilder from '@pothos/core';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import { GraphQLError, Kind } from 'graphql';
import type { Context } from '../context.ts';
import type { UploadedFile } from '../files/uploads.ts';
import type PrismaTypes from '../generated/pothos-types.ts';
import { getDatamodel } from '../generated/pothos-types.ts';
import InputGuardPlugin from './input-guard.ts';

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    /** Input only: the WHATWG File Yoga parses out of a multipart request. */
    File: { Input: UploadedFile; Output: never };
  };
}>({
  defaultFieldNullability: false,
  // The input guard comes first, so it wraps outermost: no other plugin's code sees an argument before it.
  plugins: [InputGuardPlugin, PrismaPlugin, RelayPlugin],
  prisma: {
    // Each request's context carries the client; the schema itself stays free of connections.
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: false,
    filterConnectionTotalCount: true,
    onUnusedQuery: null,
  },
  relay: {
    // Plain database ids: clients pass the same id everywhere (memberIds, chatId, ...).
    nodeQueryOptions: false,
    nodesQueryOptions: false,
    clientMutationId: 'omit',
    cursorType: 'String',
    // The parts every connection shares, described once.
    pageInfoTypeOptions: { description: 'Where a page sits in its list (Relay cursor connections).' },
    hasNextPageFieldOptions: { description: 'Whether more items follow this page (paging forward with `first`/`after`).' },
    hasPreviousPageFieldOptions: { description: 'Whether items come before this page (paging back with `last`/`before`).' },
    startCursorFieldOptions: { description: "The first item's cursor; null on an empty page." },
    endCursorFieldOptions: { description: "The last item's cursor; null on an empty page." },
    defaultConnectionTypeOptions: { description: 'A page of a list (a Relay connection): its items and where it sits.' },
    defaultEdgeTypeOptions: { description: 'One item of a page and its cursor.' },
    edgesFieldOptions: { description: 'The items of this page, in the list\'s order.' },
    pageInfoFieldOptions: { description: 'Where this page sits: whether more follow or precede, and its first and last cursors.' },
    cursorFieldOptions: { description: 'Opaque: pass it as `after` or `before` to page from this item.' },
    nodeFieldOptions: { description: 'The item.' },
    firstArgOptions: { description: 'Page forward: at most this many items (0 to 100) from the start or after `after`.' },
    afterArgOptions: { description: 'A cursor: items after this one.' },
    lastArgOptions: { description: 'Page back: at most this many items (0 to 100) from the end or before `before`.' },
    beforeArgOptions: { description: 'A cursor: items before this one.' },
  },
});

builder.scalarType('DateTime', {
  description: 'An instant, as an RFC 3339 (ISO-8601) string in UTC (e.g. 2026-01-31T12:00:00.000Z).',
  specifiedByURL: 'https://scalars.graphql.org/andimarek/date-time',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => parseDateTime(value),
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be an ISO-8601 string.');
    return parseDateTime(ast.value);
  },
});

/** The instants ISO-8601's four-digit years (and PostgreSQL's timestamps as Prisma writes them) hold. */
const DATE_TIME_RANGE = { min: new Date('0001-01-01T00:00:00.000Z').getTime(), max: new Date('9999-12-31T23:59:59.999Z').getTime() };

function parseDateTime(value: unknown): Date {
  const date = typeof value === 'string' ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string.');
  // `+275760-09-13T00:00:00Z` is a JavaScript date, but no stored one: it was written as something else.
  if (date.getTime() < DATE_TIME_RANGE.min || date.getTime() > DATE_TIME_RANGE.max) throw new GraphQLError('DateTime must be between the years 0001 and 9999.');
  return date;
}

builder.queryType({ description: 'What you can read.' });
builder.mutationType({ description: 'What you can change.' });
builder.subscriptionType({ description: 'What you can follow live, over graphql-ws (or SSE).' });
