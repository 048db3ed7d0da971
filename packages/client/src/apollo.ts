// Apollo Client 4 `typePolicies` for the Kocmoc schema: every connection merges its pages with
// relayStylePagination, types without an id are embedded (keyFields: false); the rest normalise by
// `id` (Apollo's default). `new InMemoryCache({ typePolicies: kocmocTypePolicies })`.
import type { TypePolicies } from '@apollo/client';
import { relayStylePagination } from '@apollo/client/utilities';
import { CONNECTION_FIELDS, EMBEDDED_TYPES } from './cache-config.ts';

const embedded: TypePolicies = Object.fromEntries(
  EMBEDDED_TYPES.filter((type) => !(type in CONNECTION_FIELDS)).map((type) => [type, { keyFields: false }]),
);

export const kocmocTypePolicies: TypePolicies = {
  ...embedded,
  ...Object.fromEntries(
    Object.entries(CONNECTION_FIELDS).map(([type, fields]) => [
      type,
      { fields: Object.fromEntries(Object.entries(fields).map(([field, keyArgs]) => [field, relayStylePagination(keyArgs.length > 0 ? [...keyArgs] : false)])) },
    ]),
  ),
};
