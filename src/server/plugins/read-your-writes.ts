import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../../context.ts';

/**
 * Before a mutation runs, records that its session wrote, so the session's lag-tolerant reads
 * (`ctx.reader()`) go to the primary for REPLICA_STICKY_SECONDS: it sees its own writes at once,
 * the mutation's own result included.
 */
export function useReadYourWrites(): Plugin<Context> {
  return {
    onExecute({ args }) {
      const context = args.contextValue as Context;
      if (!context.reads.replicated) return;
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
      context.reads.wrote(context.viewer?.sessionId);
    },
  };
}
