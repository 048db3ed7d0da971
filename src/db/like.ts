/**
 * `text` as a literal inside a LIKE or ILIKE pattern. Prisma's `contains`, `startsWith` and
 * `endsWith` put the value into the pattern as it is, so a `%` or `_` in it matched anything
 * (`searchUsers(query: "%")` listed every user). `\` is PostgreSQL's default escape character.
 */
export const escapeLike = (text: string) => text.replace(/[\\%_]/g, '\\$&');
