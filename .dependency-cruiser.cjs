// `npm run lint:deps`: the layering rules, checked on every CI run (dependency-cruiser).
// Domains are the folders under src/ that hold business rules; server/ speaks HTTP and WebSocket,
// schema/ is the GraphQL layer, cpu/ runs the worker-thread tasks of workers/.
const DOMAINS = '^src/(admin|auth|calls|chats|crypto|db|devices|files|limits|messages|nodes|notifications|realtime|users)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import circle, type-only imports included: each module can be read (and loaded) after what it uses.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'domains-below-the-edge',
      severity: 'error',
      comment: 'Business rules never reach up into the transport (src/server/) or the GraphQL layer (src/schema/): tests and workers call them directly.',
      from: { path: DOMAINS },
      to: { path: '^src/(server|schema)/' },
    },
    {
      name: 'cpu-knows-no-domain',
      severity: 'error',
      comment: 'The CPU pool and its tasks are infrastructure: they know nothing of the domains, the schema or the server.',
      from: { path: '^(src/cpu|workers)/' },
      to: { path: [DOMAINS, '^src/(server|schema)/', '^src/(services|context|loaders|errors)\\.ts$'] },
    },
    {
      name: 'schema-not-server',
      severity: 'error',
      comment: 'The schema is transport-free: HTTP and graphql-ws both serve it.',
      from: { path: '^src/schema/' },
      to: { path: '^src/server/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/generated/' },
    tsPreCompilationDeps: true,
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.mjs', '.js'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
