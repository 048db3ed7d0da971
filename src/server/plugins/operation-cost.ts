// The cost limit (MAX_COST): what an operation would load, computed with graphql-query-complexity
// from its document and variables before it runs, so `first: $n` counts as much as `first: 100`.
// An object field costs 1 plus its children; a connection costs its `first`/`last` (else its
// default page) times that, and so does a list; `edges` inside a connection is already counted by
// the connection. Leaves cost nothing, and neither does introspection (MAX_DEPTH and MAX_TOKENS
// bound it, and production turns it off).
import { getNamedType, getNullableType, isLeafType, isListType, Kind, visit, type ArgumentNode, type DocumentNode, type ExecutionArgs } from 'graphql';
import { getComplexity, type ComplexityEstimator } from 'graphql-query-complexity';
import type { Plugin } from 'graphql-yoga';
import { queryTooComplex } from '../../errors.ts';

/** Pages a connection returns without `first`/`last` (Pothos' default), and what an unpaged list is taken to hold. */
export const DEFAULT_LIST_SIZE = 20;
/** Fields whose selection is walked; past that the document is refused whatever its cost. */
const MAX_QUERY_NODES = 20_000;

const estimator: ComplexityEstimator = ({ type, field, args, childComplexity }) => {
  if (field.name.startsWith('__') || isLeafType(getNamedType(field.type))) return 0;
  const cost = 1 + childComplexity;
  const size = args.first ?? args.last;
  if (typeof size === 'number') return Math.max(size, 1) * cost;
  const paged = field.args.some((arg) => arg.name === 'first' || arg.name === 'last');
  const isEdges = field.name === 'edges' && type.name.endsWith('Connection');
  if (paged || (isListType(getNullableType(field.type)) && !isEdges)) return DEFAULT_LIST_SIZE * cost;
  return cost;
};

/**
 * Per document (Yoga's parser cache hands out one DocumentNode per query text): the variables its
 * cost can depend on, and costs by operation and those variables' values.
 */
const costsByDocument = new WeakMap<DocumentNode, { costVariables: string[]; costs: Map<string, number> }>();
/** Variable sets remembered per document; a client varying them endlessly just recomputes. */
const MAX_COSTS_PER_DOCUMENT = 64;

/**
 * The variables the estimator can see: a field's `first`/`last` and the `if` of @include/@skip
 * (which decides whether a field counts). Any other variable (a send's text, its clientMessageId)
 * leaves the cost as it is, so it stays out of the cache key: keyed by every variable, each
 * sendMessage had a key of its own and recomputed (~5 % of a send: bench/RESULTS.md "sendMessage:
 * where a send's CPU goes").
 */
function costVariablesOf(document: DocumentNode): string[] {
  const names = new Set<string>();
  const collect = (args: readonly ArgumentNode[] | undefined, counted: readonly string[]) => {
    for (const arg of args ?? []) if (arg.value.kind === Kind.VARIABLE && counted.includes(arg.name.value)) names.add(arg.value.name.value);
  };
  visit(document, {
    Field: (node) => collect(node.arguments, ['first', 'last']),
    Directive: (node) => collect(node.arguments, ['if']),
  });
  return [...names].sort();
}

/** The operation's cost; undefined when its variables do not fit (execution then refuses them itself). */
export function operationCost(args: Pick<ExecutionArgs, 'schema' | 'document' | 'variableValues' | 'operationName'>): number | undefined {
  let cached = costsByDocument.get(args.document);
  if (!cached) costsByDocument.set(args.document, (cached = { costVariables: costVariablesOf(args.document), costs: new Map() }));
  const { costVariables, costs } = cached;
  const variables = (args.variableValues ?? {}) as Record<string, unknown>;
  // Absent and null differ: an absent variable takes its default.
  const key = `${args.operationName ?? ''}\u0000${JSON.stringify(costVariables.filter((name) => name in variables).map((name) => [name, variables[name]]))}`;
  const known = costs.get(key);
  if (known !== undefined) return known;
  const cost = computeCost(args);
  // Never remembered when the variables did not fit (undefined): that says nothing of the same key
  // with variables that do, whose cost must still be checked.
  if (cost !== undefined && costs.size < MAX_COSTS_PER_DOCUMENT) costs.set(key, cost);
  return cost;
}

function computeCost(args: Pick<ExecutionArgs, 'schema' | 'document' | 'variableValues' | 'operationName'>): number | undefined {
  try {
    return getComplexity({
      schema: args.schema,
      query: args.document,
      variables: (args.variableValues ?? {}) as Record<string, unknown>,
      operationName: args.operationName ?? undefined,
      estimators: [estimator],
      maxQueryNodes: MAX_QUERY_NODES,
    });
  } catch (error) {
    if (error instanceof Error && /maximum allowed number of nodes/i.test(error.message)) return Number.POSITIVE_INFINITY;
    return undefined;
  }
}

const tooCostly = (cost: number, maxCost: number) =>
  queryTooComplex(
    'cost',
    Number.isFinite(cost)
      ? `This operation costs ${cost}, over the cost limit of ${maxCost}: ask for smaller pages (first/last) or fewer nested lists.`
      : `This operation selects more than ${MAX_QUERY_NODES} fields, over the cost limit of ${maxCost}.`,
  );

/** Refuses queries, mutations and subscriptions over `maxCost` before they run, over HTTP and graphql-ws alike. */
export function useCostLimit(maxCost: number): Plugin {
  const check = (args: ExecutionArgs, stop: (result: { errors: ReturnType<typeof tooCostly>[] }) => void) => {
    const cost = operationCost(args);
    if (cost !== undefined && cost > maxCost) stop({ errors: [tooCostly(cost, maxCost)] });
  };
  return {
    onExecute: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
    onSubscribe: ({ args, setResultAndStopExecution }) => check(args, setResultAndStopExecution),
  };
}
