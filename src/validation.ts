import type { z } from 'zod';
import { invalidFields } from './errors.ts';

/**
 * Parses client input with a zod schema; its problems become one BAD_USER_INPUT error naming every
 * invalid field (`input.email`, one message each), so clients can point at all of them at once.
 */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, path = 'input'): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = new Map<string, string>();
  for (const issue of result.error.issues) {
    const field = [path, ...issue.path.map(String)].filter(Boolean).join('.');
    if (!problems.has(field)) problems.set(field, issue.message);
  }
  const [first, ...rest] = [...problems].map(([field, message]) => ({ field, message }));
  throw invalidFields([first!, ...rest]);
}
