// graphql-http's audit of the GraphQL over HTTP spec, run against the full HTTP pipeline: every
// MUST and SHOULD passes, without a warning. The error contract (error-contract.test.ts) added
// bodies and codes to refusals; this keeps their statuses what the spec asks.
import { serverAudits } from 'graphql-http';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from './support/helpers.ts';

const started = startTestApp({ PUSH_ENABLED: 'false' });
afterAll(async () => (await started).stop());

const audits = serverAudits({
  url: 'http://kocmoc.test/graphql',
  fetchFn: async (input: RequestInfo | URL, init?: RequestInit) => (await started).yoga.fetch(new Request(input, init)),
});

describe('GraphQL over HTTP (graphql-http audit)', () => {
  it('has audits to run', () => {
    expect(audits.length).toBeGreaterThan(50);
  });

  it.each(audits.map((audit) => [audit.name, audit] as const))('%s', async (_name, audit) => {
    const result = await audit.fn();
    expect({ status: result.status, reason: result.status === 'ok' ? undefined : result.reason }).toEqual({ status: 'ok', reason: undefined });
  });
});
