import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);
const clientSources = new URL('packages/client/src', import.meta.url).pathname;

export default defineConfig({
  resolve: {
    // Resolve graphql to the build Node itself loads for our dependencies, so there is one
    // GraphQLError class in the test process, as under `npm start`.
    // @kocmoc/client from its sources (what its "source" export condition names for tsc and the web
    // build), so the suite never runs a stale dist/.
    alias: [
      { find: /^graphql$/, replacement: require.resolve('graphql') },
      { find: /^@kocmoc\/client$/, replacement: `${clientSources}/index.ts` },
      { find: /^@kocmoc\/client\/(documents|apollo)$/, replacement: `${clientSources}/$1.ts` },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file starts its own app (and worker pool); two at a time suits a 2-core machine.
    maxWorkers: 2,
  },
});
