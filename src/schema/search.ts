// searchMessages over encrypted-at-rest text (src/messages/search.ts).
import { requireViewer } from '../auth/authenticate.ts';
import { searchMessages, SEARCH_QUERY_MAX_LENGTH, type HighlightRange, type SearchHighlight, type SearchHit } from '../messages/search.ts';
import { badUserInput } from '../errors.ts';
import { builder } from './builder.ts';
import { MessageRef } from './messages.ts';
import { pageSizeFor } from './pagination.ts';

const HighlightRangeRef = builder.objectRef<HighlightRange>('HighlightRange').implement({
  description: 'A match inside a highlight snippet.',
  fields: (t) => ({
    start: t.exposeInt('start', { description: 'Offset in the snippet, in UTF-16 code units (a JavaScript string index).' }),
    length: t.exposeInt('length', { description: 'Length in UTF-16 code units: whole words, from the first of the phrase to its last.' }),
  }),
});

const SearchHighlightRef = builder.objectRef<SearchHighlight>('SearchHighlight').implement({
  description: 'Where the query matched a message.',
  fields: (t) => ({
    snippet: t.exposeString('snippet', {
      description: 'The message text, or the part around its first match with "…" where it was cut.',
    }),
    ranges: t.field({
      type: [HighlightRangeRef],
      description: 'Each occurrence of the phrase in the snippet, in order.',
      resolve: (highlight) => highlight.ranges,
    }),
  }),
});

const DEFAULT_PAGE = 20;

builder.queryFields((t) => ({
  searchMessages: t.connection(
    {
      type: MessageRef,
      description:
        'Messages whose text (or caption) holds the query as a phrase — its words in a row, case, accents and compatibility forms ignored, the last word also as a prefix of 3+ letters — in chats you are a member of now, newest first. End-to-end encrypted chats are not searchable.',
      args: {
        query: t.arg.string({ required: true, description: `Up to ${SEARCH_QUERY_MAX_LENGTH} characters and 10 words.` }),
        chatId: t.arg.id({ required: false, description: 'Only this chat (one you are in; else NOT_FOUND).' }),
      },
      resolve: async (_root, args, ctx) => {
        const viewerId = requireViewer(ctx).userId;
        pageSizeFor(args);
        if (args.last != null || args.before != null) throw badUserInput(args.last != null ? 'last' : 'before', 'Search pages forward only: use first and after.');
        await ctx.rateLimits.consume('search', viewerId);
        const page = await searchMessages(ctx, viewerId, {
          query: args.query,
          chatId: args.chatId == null ? null : String(args.chatId),
          first: args.first ?? DEFAULT_PAGE,
          after: args.after,
        });
        return {
          edges: page.hits.map((hit) => ({ cursor: hit.cursor, node: hit.message, hit })),
          pageInfo: {
            hasNextPage: page.hasNextPage,
            hasPreviousPage: args.after != null,
            startCursor: page.hits[0]?.cursor ?? null,
            endCursor: page.hits.at(-1)?.cursor ?? null,
          },
        };
      },
    },
    { name: 'MessageSearchConnection', description: 'A page of search results, newest first.' },
    {
      name: 'MessageSearchEdge',
      description: 'A message that matched, and where.',
      fields: (edge) => ({
        highlight: edge.field({
          type: SearchHighlightRef,
          description: 'The matching part of the text, with the matches marked.',
          resolve: (parent) => (parent as unknown as { hit: SearchHit }).hit.highlight,
        }),
      }),
    },
  ),
}));
