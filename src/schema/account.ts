// Account safety: changing the password, deleting the account, exporting one's data.
import { requireViewer } from '../auth/authenticate.ts';
import { changePassword } from '../auth/password-change.ts';
import { deleteAccount } from '../users/account-deletion.ts';
import { exportMyData } from '../users/data-export.ts';
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
      await changePassword(ctx, requireViewer(ctx), { ...args, address: ctx.clientAddress });
      return true;
    },
  }),
  deleteAccount: t.boolean({
    description:
      'Deletes your account for good, after checking `password` as a login does. At once: your email, password, name, bio and picture are ' +
      'erased, every session ends (this one too), and your contacts, blocks and push subscriptions go. Then your messages stay in their ' +
      'chats as from a deleted account with their content erased (as deleteMessage does), your uploads are deleted, you leave your groups ' +
      '(ownership passes on as with leaveChat), and direct chats stay readable by the other member, who sees `User.deleted`. Your username ' +
      'stays reserved for 30 days, then anyone may register it.',
    args: { password: t.arg.string({ required: true, description: 'Your password.' }) },
    resolve: async (_root, args, ctx) => {
      await deleteAccount(ctx, requireViewer(ctx), args.password, ctx.clientAddress);
      return true;
    },
  }),
  exportMyData: t.string({
    description:
      'Exports everything your account holds as one JSON file (the GDPR right of access): profile, contacts, blocks, chats, device sessions, ' +
      'push subscriptions, uploads (their details; download the files themselves through their links), drafts, reactions, scheduled messages (decrypted, every state) ' +
        'and every message you sent, decrypted, ' +
      'with its earlier versions. Returns an absolute download link (`https://<host>/exports/<id>?u=…&expires=…&sig=…`, under PUBLIC_URL if set) that works for ' +
      'you for DATA_EXPORT_TTL (an hour by default); then the file, stored encrypted meanwhile, is deleted. Once a day: RATE_LIMITED with ' +
      '`retryAfterSeconds` before that.',
    resolve: async (_root, _args, ctx) => new URL(await exportMyData(ctx, requireViewer(ctx).userId), ctx.origin).href,
  }),
}));
