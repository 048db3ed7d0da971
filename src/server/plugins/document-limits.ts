// What a GraphQL document may ask for, checked before anything runs, over HTTP and graphql-ws alike
// (both go through Yoga's envelop): graphql-armor's alias, depth, token and directive limits
// (OWASP's GraphQL cheat sheet; armor's defaults but for tokens), the cost limit
// (operation-cost.ts), each mutation that hashes a password at most once, `uploadFile` at most once
// per file variable and MAX_UPLOADS_PER_REQUEST times. Refusals are QUERY_TOO_COMPLEX with
// `extensions.limit` naming the limit. Without introspection (production), introspection is
// refused and validation errors suggest no field names.
import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesRule } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import {
  Kind,
  NoSchemaIntrospectionCustomRule,
  type ASTVisitor,
  type GraphQLError,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../../env.ts';
import { forbidden, queryTooComplex } from '../../errors.ts';
import { useCostLimit } from './operation-cost.ts';

/** Root mutations that hash a password: each costs a worker thread tens of milliseconds. */
export const PASSWORD_MUTATIONS: ReadonlySet<string> = new Set(['login', 'register', 'changePassword', 'deleteAccount']);

type DocumentLimits = Config['limits']['document'];

/** armor's rules report through callbacks; ours replace their errors with coded ones. */
function armorRule(
  rule: (options: { n: number; onReject: Array<(context: ValidationContext | null) => void>; propagateOnRejection: boolean }) => ValidationRule,
  limit: string,
  n: number,
  message: string,
  options: Record<string, unknown> = {},
): ValidationRule {
  return (context) =>
    rule({ ...options, n, propagateOnRejection: false, onReject: [(ctx) => ctx?.reportError(queryTooComplex(limit, message))] })(context);
}

/** The root fields an operation selects, through fragments, by name (aliases counted apart). */
function rootFields(context: ValidationContext, selectionSet: SelectionSetNode, seen = new Set<string>()) {
  const fields: Array<{ name: string; fileVariables: string[] }> = [];
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      const fileVariables = (selection.arguments ?? []).flatMap((arg) => (arg.name.value === 'file' && arg.value.kind === Kind.VARIABLE ? [arg.value.name.value] : []));
      fields.push({ name: selection.name.value, fileVariables });
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      fields.push(...rootFields(context, selection.selectionSet, seen));
    } else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = context.getFragment(selection.name.value);
      if (fragment) fields.push(...rootFields(context, fragment.selectionSet, seen));
    }
  }
  return fields;
}

function mutationLimitsRule(maxUploads: number): ValidationRule {
  return (context): ASTVisitor => ({
    OperationDefinition(operation) {
      if (operation.operation !== 'mutation') return;
      const fields = rootFields(context, operation.selectionSet);
      for (const name of PASSWORD_MUTATIONS) {
        if (fields.filter((field) => field.name === name).length > 1) {
          context.reportError(queryTooComplex('passwordMutations', `${name} may appear only once in a document: each one hashes a password.`));
        }
      }
      const uploads = fields.filter((field) => field.name === 'uploadFile');
      if (uploads.length > maxUploads) {
        context.reportError(queryTooComplex('uploads', `At most ${maxUploads} uploadFile per request (MAX_UPLOADS_PER_REQUEST), found ${uploads.length}.`));
      }
      const variables = uploads.flatMap((field) => field.fileVariables);
      if (new Set(variables).size < variables.length) {
        context.reportError(queryTooComplex('uploads', 'Each file can be uploaded by one uploadFile only: give every uploadFile a file variable of its own.'));
      }
    },
  });
}

/** graphql-js' rule, with FORBIDDEN as its code, reported once per document. */
const noIntrospectionRule: ValidationRule = (context) => {
  let reported = false;
  const report = (error: GraphQLError) => {
    if (!reported) context.reportError(withCode(error, forbidden('Introspection is disabled on this server.')));
    reported = true;
  };
  return NoSchemaIntrospectionCustomRule(Object.create(context, { reportError: { value: report } }) as ValidationContext);
};

const withCode = (original: GraphQLError, coded: GraphQLError) => Object.assign(coded, { locations: original.locations, nodes: original.nodes });

export interface DocumentLimitsOptions {
  limits: DocumentLimits;
  /** Without it, introspection is refused and field suggestions are left out of errors. */
  introspection: boolean;
}

export function useDocumentLimits({ limits, introspection }: DocumentLimitsOptions): Plugin {
  const rules: ValidationRule[] = [
    armorRule(maxAliasesRule as never, 'aliases', limits.maxAliases, `At most ${limits.maxAliases} aliases per document.`),
    // Fragment spreads are not a level: a client's fragments (codegen, gql.tada) cost no depth.
    armorRule(maxDepthRule as never, 'depth', limits.maxDepth, `Fields may nest at most ${limits.maxDepth} levels deep.`, { flattenFragments: true }),
    armorRule(maxDirectivesRule as never, 'directives', limits.maxDirectives, `At most ${limits.maxDirectives} directives per document.`),
    mutationLimitsRule(limits.maxUploadsPerRequest),
    ...(introspection ? [] : [noIntrospectionRule]),
  ];
  const tokens = maxTokensPlugin({
    n: limits.maxTokens,
    propagateOnRejection: false,
    onReject: [
      () => {
        throw queryTooComplex('tokens', `At most ${limits.maxTokens} tokens per document.`);
      },
    ],
  });
  const plugins: Plugin[] = [
    tokens as Plugin,
    { onValidate: ({ addValidationRule }) => rules.forEach(addValidationRule) },
    useCostLimit(limits.maxCost),
    ...(introspection ? [] : [blockFieldSuggestionsPlugin({ mask: '' }) as Plugin]),
  ];
  return { onPluginInit: ({ addPlugin }) => plugins.forEach(addPlugin) };
}
