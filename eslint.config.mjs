// `npm run lint:schema`: graphql-eslint's schema rules on schema.graphql (printed from the Pothos
// schema by `npm run schema:print`), so a type, field, argument or enum value without a description,
// a name off the conventions or a connection that is not Relay's fails `npm run lint` and CI.
import graphql from '@graphql-eslint/eslint-plugin';

export default [
  {
    files: ['schema.graphql'],
    languageOptions: { parser: graphql.parser, parserOptions: { graphQLConfig: { schema: 'schema.graphql' } } },
    plugins: { '@graphql-eslint': graphql },
    rules: {
      '@graphql-eslint/require-description': [
        'error',
        {
          types: true,
          rootField: true,
          FieldDefinition: true,
          InputValueDefinition: true,
          EnumValueDefinition: true,
          DirectiveDefinition: true,
        },
      ],
      '@graphql-eslint/naming-convention': [
        'error',
        {
          types: 'PascalCase',
          FieldDefinition: 'camelCase',
          InputValueDefinition: 'camelCase',
          Argument: 'camelCase',
          DirectiveDefinition: 'camelCase',
          EnumValueDefinition: 'UPPER_CASE',
          'FieldDefinition[parent.name.value=Query]': { forbiddenPrefixes: ['query', 'get'], forbiddenSuffixes: ['Query'] },
          'FieldDefinition[parent.name.value=Mutation]': { forbiddenPrefixes: ['mutation'], forbiddenSuffixes: ['Mutation'] },
          'FieldDefinition[parent.name.value=Subscription]': { forbiddenPrefixes: ['subscription'], forbiddenSuffixes: ['Subscription'] },
          'EnumTypeDefinition,EnumTypeExtension': { forbiddenPrefixes: ['Enum'], forbiddenSuffixes: ['Enum'] },
          'InterfaceTypeDefinition,InterfaceTypeExtension': { forbiddenPrefixes: ['Interface'], forbiddenSuffixes: ['Interface'] },
          'UnionTypeDefinition,UnionTypeExtension': { forbiddenPrefixes: ['Union'], forbiddenSuffixes: ['Union'] },
          'ObjectTypeDefinition,ObjectTypeExtension': { forbiddenPrefixes: ['Type'], forbiddenSuffixes: ['Type'] },
          // One edge convention: `<Node>Edge` beside `<Node>Connection`.
          'ObjectTypeDefinition[name.value=/Edge$/]': { forbiddenSuffixes: ['ConnectionEdge'] },
        },
      ],
      '@graphql-eslint/relay-connection-types': 'error',
      '@graphql-eslint/relay-edge-types': ['error', { withEdgeSuffix: true, shouldImplementNode: true, listTypeCanWrapOnlyEdgeType: false }],
      '@graphql-eslint/relay-page-info': 'error',
      '@graphql-eslint/strict-id-in-types': [
        'error',
        {
          acceptedIdNames: ['id'],
          acceptedIdTypes: ['ID'],
          exceptions: {
            // Values, not entities: an event, a payload, a page, a key, a setting; nothing to normalise.
            suffixes: ['Event', 'Payload', 'Connection', 'Edge', 'Signal', 'Key', 'Bundle', 'State', 'Server'],
            // ...and parts of a message or a result, shown inside it (a Draft is one per chat and user).
            types: ['PageInfo', 'Location', 'Envelope', 'Draft', 'ForwardedFrom', 'ReactionGroup', 'ThreadSummary', 'SearchHighlight', 'HighlightRange'],
          },
        },
      ],
      '@graphql-eslint/no-unreachable-types': 'error',
    },
  },
];
