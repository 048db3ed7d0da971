// Relay object identification (the Global Object Identification spec): the Node interface and
// node/nodes. Ids stay the stored UUIDs (nodes/lookup.ts): no type tag, nothing to decode.
import { requireViewer } from '../auth/authenticate.ts';
import { badUserInput } from '../errors.ts';
import { chatMemberId, type NodeShape } from '../nodes/lookup.ts';
import { builder } from './builder.ts';
import { MAX_PAGE_SIZE } from './pagination.ts';

export const NodeRef = builder.interfaceRef<NodeShape>('Node').implement({
  description:
    'Anything with an identity: refetch it with node(id). Ids are the stored ids every argument takes, unique across all types.',
  resolveType: (value) => (value as { __typename?: string }).__typename ?? null,
  fields: (t) => ({
    id: t.id({
      description: 'Stable and unique across all types; the id arguments take.',
      resolve: (node) => ('id' in node ? node.id : chatMemberId(node)),
    }),
  }),
});

builder.queryFields((t) => ({
  node: t.field({
    type: NodeRef,
    nullable: true,
    description: 'The object with this id, or null if there is none or you may not see it (the same rule as its typed field: a chat you are not in is null).',
    args: { id: t.arg.id({ required: true, description: 'Any Node id.' }) },
    resolve: (_root, args, ctx) => {
      requireViewer(ctx);
      return ctx.loaders.node.load(String(args.id));
    },
  }),
  nodes: t.field({
    type: [NodeRef],
    nullable: { list: false, items: true },
    description: `The objects with these ids, in order; null for each one like node(id). At most ${MAX_PAGE_SIZE} ids.`,
    args: { ids: t.arg.idList({ required: true, description: `Any Node ids, at most ${MAX_PAGE_SIZE}.` }) },
    resolve: async (_root, args, ctx) => {
      requireViewer(ctx);
      if (args.ids.length > MAX_PAGE_SIZE) throw badUserInput('ids', `At most ${MAX_PAGE_SIZE} ids.`);
      const nodes = await ctx.loaders.node.loadMany(args.ids.map(String));
      return nodes.map((node) => {
        if (node instanceof Error) throw node;
        return node;
      });
    },
  }),
}));
