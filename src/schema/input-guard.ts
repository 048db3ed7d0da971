// One check for every argument of every field, before any resolver or subscription sees it:
// strings that hold NUL (PostgreSQL refuses the byte: the client got INTERNAL and the log a stack)
// or an unpaired UTF-16 surrogate (no character at all; the driver would store U+FFFD instead) are
// BAD_USER_INPUT naming the argument's path (`input.displayName`, `userIds.2`). Malformed
// connection cursors become one plain BAD_USER_INPUT too, without the cursor's format.
//
// A Pothos plugin must be a class: that is its API (SchemaBuilder.registerPlugin).
import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { badUserInput } from '../errors.ts';

/** NUL, or a surrogate code unit that is not half of a pair (`u` mode sees those as lone code points). */
const UNSTORABLE = /[\0\p{Cs}]/u;

/** The path of the first string in `value` that cannot be stored, or null. Dates, files and other class instances are skipped. */
export function unstorableStringPath(value: unknown, path: string): string | null {
  if (typeof value === 'string') return UNSTORABLE.test(value) ? path : null;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = unstorableStringPath(value[index], `${path}.${index}`);
      if (found) return found;
    }
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const prototype = Object.getPrototypeOf(value);
  // graphql-js builds input objects with a null prototype.
  if (prototype !== null && prototype !== Object.prototype) return null;
  for (const [key, item] of Object.entries(value)) {
    const found = unstorableStringPath(item, path ? `${path}.${key}` : key);
    if (found) return found;
  }
  return null;
}

export const INVALID_CURSOR = 'The cursor is invalid.';

/** Pothos' complaints about a cursor it cannot decode (they describe the cursor's format). */
export const isCursorError = (error: unknown) =>
  error instanceof Error && error.name === 'PothosValidationError' && /cursor|base64|Invalid id received/i.test(error.message);

function cursorField(args: object): string {
  return (args as { after?: unknown }).after != null ? 'after' : 'before';
}

type Resolver = GraphQLFieldResolver<unknown, object, object>;

function guarded<R extends Resolver>(resolver: R): R {
  return ((parent, args, context, info) => {
    const field = unstorableStringPath(args, '');
    if (field) throw badUserInput(field, 'Text cannot contain NUL characters or unpaired surrogates.');
    const translate = (error: unknown): never => {
      if (isCursorError(error) && ('after' in args || 'before' in args)) throw badUserInput(cursorField(args), INVALID_CURSOR);
      // `Argument "first" must be a non-negative integer`, `Arguments "before" and "after" are not supported at the same time`
      const argument = error instanceof Error && error.name === 'PothosValidationError' ? /^Arguments? "(\w+)"/.exec(error.message) : null;
      throw argument ? badUserInput(argument[1]!, error instanceof Error ? error.message : '') : error;
    };
    try {
      const result = resolver(parent, args, context, info);
      return result instanceof Promise ? result.catch(translate) : result;
    } catch (error) {
      return translate(error);
    }
  }) as R;
}

export class InputGuardPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  /** Outside Pothos' own argument mapping, for resolvers and subscribe functions alike; fields without arguments are left alone. */
  override wrapArgMappers(resolver: GraphQLFieldResolver<unknown, Types['Context'], object> | undefined, fieldConfig: PothosOutputFieldConfig<Types>) {
    if (!resolver || Object.keys(fieldConfig.args).length === 0) return resolver;
    return guarded(resolver);
  }
}

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  export namespace PothosSchemaTypes {
    interface Plugins<Types extends SchemaTypes> {
      inputGuard: InputGuardPlugin<Types>;
    }
  }
}

SchemaBuilder.registerPlugin('inputGuard', InputGuardPlugin);
export default 'inputGuard' as const;
