// Hostile variable values for the fuzz test, built from a field's argument types: each case number
// picks another value of every argument's type, so one field gets many different bad inputs.
import {
  getNamedType,
  isCompositeType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
} from 'graphql';

/** Ids that exist, so some cases reach the rules behind an id (set by the test before it runs). */
export const knownIds: string[] = [];

const base64 = (text: string) => Buffer.from(text).toString('base64');

/** Strings every text argument gets, in turn. `BIG` and `JUST_UNDER` are placeholders for the large ones. */
const BIG = Symbol('1 MB string');
const JUST_UNDER = Symbol('a string just under MAX_REQUEST_BYTES');
const STRINGS: Array<string | symbol> = [
  'a\u0000b',
  '\ud800',
  '',
  '%',
  '_',
  '%_\\',
  BIG,
  "' OR '1'='1' --",
  '\u202Eexe.fdp',
  'ad\u200Bmin',
  '../../../etc/passwd',
  '<img src=x onerror=alert(1)>',
  '😀'.repeat(2_000),
  '\uDC00lone low',
  ' \n\t ',
  JUST_UNDER,
  '{"__proto__":{"admin":true}}',
  'https://[::ffff:127.0.0.1]:9/x',
  'x'.repeat(10_000),
  '\u0000',
];
const CURSORS = ['zzz', '', base64('GPC:J:123'), base64('GPC:S:x'), base64('GPC:J:[1,2,3,4]'), base64('GPC:N:1e400'), 'R1BDOkQ6MTIz', '\u0000', '%'];
const IDS = ['not-an-id', '', '\u0000', '00000000-0000-0000-0000-000000000000', '1', '-1', 'x'.repeat(5_000), '%', '\ud800', 7];
const INTS: unknown[] = [-1, 0, -2_147_483_648, 2_147_483_647, 2 ** 31, -(2 ** 31) - 1, 1.5, '1', 1e300, -999_999];
const FLOATS: unknown[] = [1e308, -1e308, 91, -181, 0, 'x', 5e-324, 2 ** 53];
const BOOLEANS: unknown[] = [true, false, 'true', 1, 0];
const DATES: unknown[] = ['not a date', '+275760-09-13T00:00:00.000Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '1970-01-01T00:00:00Z', '2020-02-30T00:00:00Z', 0, '', '\u0000'];

/** An object nested `depth` levels deep: a deep input where a scalar or a flat input is expected. */
export function deepObject(depth: number): unknown {
  let value: unknown = 'bottom';
  for (let level = 0; level < depth; level++) value = { nested: value, field: value === 'bottom' ? 1 : 'x' };
  return value;
}

export interface CaseOptions {
  /** Size of the largest string a case may carry (1 MB over HTTP; the WebSocket frame limit is 256 KiB). */
  bigBytes: number;
  /** A string of this size keeps the body just under MAX_REQUEST_BYTES. */
  justUnderBytes: number;
}

interface Budget {
  /** One large string per variable set, so bodies stay near the limit rather than far past it. */
  bigUsed: boolean;
}

const pick = <T>(values: readonly T[], index: number) => values[index % values.length]!;

function stringValue(name: string, index: number, options: CaseOptions, budget: Budget): unknown {
  if (/^(after|before)$/.test(name)) return pick(CURSORS, index);
  const chosen = pick(STRINGS, index);
  if (typeof chosen === 'string') return chosen;
  if (budget.bigUsed) return 'x';
  budget.bigUsed = true;
  return 'x'.repeat(chosen === BIG ? options.bigBytes : options.justUnderBytes);
}

function valueOf(type: GraphQLInputType, name: string, index: number, options: CaseOptions, budget: Budget, depth = 0): unknown {
  if (isNonNullType(type)) return index % 17 === 16 ? null : valueOf(type.ofType, name, index, options, budget, depth);
  if (isListType(type)) {
    const item = (k: number) => valueOf(type.ofType, name, index + k, options, budget, depth + 1);
    switch (index % 5) {
      case 0:
        return [];
      case 1:
        return item(0); // a single value where a list goes (GraphQL coerces it)
      case 2:
        return Array.from({ length: 600 }, (_, k) => (knownIds.length > 0 && k % 2 ? pick(knownIds, k) : `id-${k}`));
      default:
        return [item(0), item(1), item(2)];
    }
  }
  if (isInputObjectType(type)) {
    if (depth > 3) return {};
    const fields = Object.values(type.getFields());
    const object: Record<string, unknown> = {};
    fields.forEach((field, k) => {
      object[field.name] = valueOf(field.type, field.name, index + k, options, budget, depth + 1);
    });
    if (index % 6 === 5) object.notAField = deepObject(30);
    return object;
  }
  if (isEnumType(type)) return pick([...type.getValues().map((value) => value.name), 'NOPE', '', 1, type.getValues()[0]!.name.toLowerCase()], index);
  switch (getNamedType(type).name) {
    case 'String':
      return stringValue(name, index, options, budget);
    case 'ID':
      return index % 3 === 0 && knownIds.length > 0 ? pick(knownIds, index) : pick(IDS, index);
    case 'Int':
      return pick(INTS, index);
    case 'Float':
      return pick(FLOATS, index);
    case 'Boolean':
      return pick(BOOLEANS, index);
    case 'DateTime':
      return pick(DATES, index);
    default:
      // File and any other custom scalar: something that is not one.
      return pick(['not a file', { name: 'x', size: 1 }, 0, null], index);
  }
}

/** Variable sets per field: at least this many. */
export const CASES_PER_FIELD = 24;

/**
 * The variable sets of one root field: values of each argument's type in turn, then sets where
 * every argument is a deep object or the wrong type, and one with no variables at all.
 */
export function variableSets(field: GraphQLField<unknown, unknown>, options: CaseOptions): Array<Record<string, unknown>> {
  const sets: Array<Record<string, unknown>> = [];
  const each = (make: (arg: GraphQLArgument, k: number) => unknown) =>
    Object.fromEntries(field.args.map((arg, k) => [variableName(arg), make(arg, k)]));
  for (let index = 0; index < CASES_PER_FIELD - 3; index++) {
    const budget: Budget = { bigUsed: false };
    sets.push(each((arg, k) => valueOf(arg.type, arg.name, index + k, options, budget)));
  }
  sets.push(each(() => deepObject(200)));
  sets.push(each((_arg, k) => [[k], { wrong: true }, 12.5][k % 3]));
  sets.push({});
  return sets;
}

export const variableName = (arg: GraphQLArgument) => `v_${arg.name}`;

/** `query Fuzz($v_id: ID!) { user(id: $v_id) { __typename } }` for a root field. */
export function operationFor(operation: 'query' | 'mutation' | 'subscription', field: GraphQLField<unknown, unknown>): string {
  const declarations = field.args.map((arg) => `$${variableName(arg)}: ${String(arg.type)}`).join(', ');
  const args = field.args.map((arg) => `${arg.name}: $${variableName(arg)}`).join(', ');
  const selection = isCompositeType(getNamedType(field.type)) ? ' { __typename }' : '';
  return `${operation} Fuzz${declarations ? `(${declarations})` : ''} { ${field.name}${args ? `(${args})` : ''}${selection} }`;
}
