// Account safety: changing the password, deleting the account, exporting one's data.
import { requireViewer } from '../auth/authenticate.ts';
import { changePassword } from '../auth/password-change.ts';
import { builder } from './builder.ts';

builder.mutationFields((t) => ({
  changePassword: t.boolean({
    description:
      'Changes your password. `currentPassword` is checked as a login checks it (and counts as a login attempt); `newPassword` follows the ' +
      'registration rules. Every other device session of your account ends at once (its tokens stop working, its sockets close); this one stays signed in.',
    args: {
      currentPassword: t.arg.string({ required: true, description: 'Your password now.' }),
      newPassword: t.arg.string({ required: true, description: 'At least 8 characters, not your username or email, not the current password.' }),
    },
    resolve: async (_root, args, ctx) => {
      await changePassword(ctx, requireViewer(ctx), args.currentPassword, args.newPassword);
      return true;
    },
  }),
}));
