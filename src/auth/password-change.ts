// Changing a password: proven with the current one, held to the registration rules, and the end of
// every other device session (a password is usually changed because someone else may know it).
import { badUserInput, conflict } from '../errors.ts';
import type { Services } from '../services.ts';
import { checkPassword } from './accounts.ts';
import type { Viewer } from './authenticate.ts';
import { passwordProblem } from './passwords.ts';
import { announceSessionsEnded, markRevoked } from './sessions.ts';

type PasswordChangeServices = Pick<Services, 'prisma' | 'passwords' | 'loginLimits' | 'events' | 'sessions'>;

/** Why the sessions a password change ends were revoked (Session.revokedReason). */
export const PASSWORD_CHANGED = 'password_changed';

/**
 * Sets a new password for the viewer after checking the current one the way login does (so login
 * limits count it, from the client's `address`). Every other session of the account ends in the same transaction, and their
 * sockets close; the viewer's own session stays signed in.
 */
export async function changePassword(
  services: PasswordChangeServices,
  viewer: Viewer,
  { currentPassword, newPassword, address }: { currentPassword: string; newPassword: string; address: string },
) {
  const { prisma, passwords } = services;
  if (!currentPassword) throw badUserInput('currentPassword', 'Enter your current password.');
  const user = await prisma.user.findUniqueOrThrow({ where: { id: viewer.userId } });
  const problem = passwordProblem(newPassword, user);
  if (problem) throw badUserInput('newPassword', problem);
  if (newPassword === currentPassword) throw badUserInput('newPassword', 'The new password must differ from the current one.');
  if (!(await checkPassword(services, async () => user, currentPassword, { address }))) {
    throw badUserInput('currentPassword', 'The current password is not correct.');
  }
  const passwordHash = await passwords.hash(newPassword);
  const ended = await prisma.$transaction(async (tx) => {
    // Only over the hash that was verified: of two changes at once, one wins and the other is told.
    const changed = await tx.user.updateMany({ where: { id: user.id, passwordHash: user.passwordHash }, data: { passwordHash } });
    if (changed.count === 0) throw conflict('currentPassword', 'The password was changed meanwhile. Try again.');
    return markRevoked(tx, { userId: user.id, id: { not: viewer.sessionId } }, PASSWORD_CHANGED);
  });
  await announceSessionsEnded(services, ended);
}
