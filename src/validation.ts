import type { z } from 'zod';
import { badUserInput } from './errors.ts';

/**
 * Parses client input with a zod schema; the first problem becomes a BAD_USER_INPUT error naming
 * the field (`input.email`), so clients can point at it.
 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, path = 'input'): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = [path, ...issue.path.map(String)].filter(Boolean).join('.');
  throw badUserInput(field, issue.message);
}
