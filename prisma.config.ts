// Used by the Prisma CLI only for `prisma generate`: migrations run through src/db/migrate/,
// which uses Prisma's WASM schema engine and works offline.
import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
