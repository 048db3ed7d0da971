// Operator API: maintenance mode. Needs the `x-admin-token` header equal to ADMIN_TOKEN.
import type { MaintenanceState } from '../admin/maintenance.ts';
import type { Context } from '../context.ts';
import { badUserInput, forbidden } from '../errors.ts';
import { builder } from './builder.ts';

const MAINTENANCE_MESSAGE_MAX = 500;

const MaintenanceStateRef = builder.objectRef<MaintenanceState>('MaintenanceState').implement({
  description: 'While enabled, every mutation except admin ones fails with MAINTENANCE; queries and subscriptions keep working.',
  fields: (t) => ({
    enabled: t.exposeBoolean('enabled', { description: 'Whether mutations are refused now.' }),
    message: t.exposeString('message', { nullable: true, description: 'Shown to clients in the MAINTENANCE error.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', nullable: true, description: 'When it was last switched; null if never.' }),
  }),
});

function requireAdmin(ctx: Context) {
  if (!ctx.config.adminToken) throw forbidden('The admin API is disabled: set ADMIN_TOKEN on the server.');
  if (!ctx.isAdmin) throw forbidden('This needs a valid x-admin-token header.');
}

builder.queryFields((t) => ({
  maintenance: t.field({
    type: MaintenanceStateRef,
    description: 'Maintenance mode as all instances see it (admin only).',
    resolve: (_root, _args, ctx) => {
      requireAdmin(ctx);
      return ctx.maintenance.get();
    },
  }),
}));

builder.mutationFields((t) => ({
  setMaintenanceMode: t.field({
    type: MaintenanceStateRef,
    description: 'Switches maintenance mode for every instance (admin only); it stays as set across restarts.',
    args: { enabled: t.arg.boolean({ required: true, description: 'On or off.' }), message: t.arg.string({ required: false, description: `Shown to clients in the MAINTENANCE error (up to ${MAINTENANCE_MESSAGE_MAX} characters).` }) },
    resolve: (_root, args, ctx) => {
      requireAdmin(ctx);
      const message = args.message?.trim() || null;
      if (message && message.length > MAINTENANCE_MESSAGE_MAX) {
        throw badUserInput('message', `Message must be at most ${MAINTENANCE_MESSAGE_MAX} characters.`);
      }
      return ctx.maintenance.set(args.enabled, message);
    },
  }),
}));
