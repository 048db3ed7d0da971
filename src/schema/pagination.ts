import { badUserInput } from '../errors.ts';

/** Largest page any connection returns. */
export const MAX_PAGE_SIZE = 100;

interface PageArgs {
  first?: number | null;
  last?: number | null;
}

/** Refuses page sizes a client could not have meant, instead of silently clamping them. */
function checkPageArgs(args: PageArgs) {
  for (const field of ['first', 'last'] as const) {
    const size = args[field];
    if (size != null && (size < 0 || size > MAX_PAGE_SIZE)) {
      throw badUserInput(field, `${field} must be between 0 and ${MAX_PAGE_SIZE}.`);
    }
  }
}

/** For a connection's `maxSize`: checks the page arguments, then answers the maximum. */
export function pageSizeFor(args: PageArgs): number {
  checkPageArgs(args);
  return MAX_PAGE_SIZE;
}
