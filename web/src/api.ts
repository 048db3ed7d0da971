// Signed-in requests: run() with the session's access token, refreshed and retried once when the
// server says the token no longer works.
import type { AnyVariables, TypedDocumentNode } from '@urql/core';
import { accessToken, tokenRefused } from './session.ts';
import { ApiError, run } from './transport.ts';

export async function request<Data, Variables extends AnyVariables>(document: TypedDocumentNode<Data, Variables>, variables: Variables): Promise<Data> {
  try {
    return await run(document, variables, await accessToken());
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== 'UNAUTHENTICATED') throw error;
    await tokenRefused();
    return run(document, variables, await accessToken());
  }
}
