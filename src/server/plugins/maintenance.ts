import { getOperationAST } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { MAINTENANCE_RETRY_AFTER_SECONDS, type Maintenance } from '../../admin/maintenance.ts';
import { maintenance as maintenanceError } from '../../errors.ts';

/** Mutations that still run during maintenance (the ones that switch it). */
export const ADMIN_MUTATIONS: ReadonlySet<string> = new Set(['setMaintenanceMode']);

/**
 * While maintenance mode is on, refuses every mutation except admin ones with MAINTENANCE (HTTP 503
 * and Retry-After for plain POSTs). Queries and subscriptions keep working.
 */
export function useMaintenanceMode(maintenance: Maintenance): Plugin {
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'mutation') return;
      const fields = operation.selectionSet.selections.filter((s) => s.kind === 'Field');
      if (fields.length > 0 && fields.every((field) => ADMIN_MUTATIONS.has(field.name.value))) return;
      const state = await maintenance.get();
      if (!state.enabled) return;
      setResultAndStopExecution({
        errors: [maintenanceError(state.message ?? 'Kocmoc is in maintenance. Try again in a few minutes.', MAINTENANCE_RETRY_AFTER_SECONDS)],
      });
    },
  };
}
