import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../../context.ts';

/**
 * Before a mutation runs, records that its session wrote, so the session's lag-tolerant reads
 * (`ctx.reader()`) go to the primary for REPLICA_STICKY_SECONDS: it sees its own writes at once,
 * the mutation's own result included. With Redis the mark is written there first (one SET), so
 * the session's next request reads its writes on any instance.
 */
export function useReadYourWrites(): Plugin<Context> {
  return {
    async onExecute({ args }) {
      const context = args.contextValue as Context;
      if (!context.reads.replicated) return;
      if (getOperationAST(args.document, args.operationName)?.operation !== 'mutation') return;
      await context.reads.wrote(context.viewer?.sessionId);
    },
  };
}
