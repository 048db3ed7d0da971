// Signed out: the sign-in form. Signed in: the messenger. On load, a stored refresh token resumes
// the session without asking again.
import { useEffect, useState } from 'preact/hooks';
import type { User } from '@kocmoc/client/documents';
import { currentUser, onSessionChange, restore } from '../session.ts';
import { describe } from '../transport.ts';
import { Messenger } from './Messenger.tsx';
import { SignIn } from './SignIn.tsx';

export function App() {
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [notice, setNotice] = useState<string>();

  useEffect(() => {
    const stop = onSessionChange((next, reason) => {
      setUser(next);
      if (reason) setNotice(reason);
    });
    restore().then(
      () => setUser(currentUser()),
      (error: unknown) => {
        setUser(null);
        setNotice(describe(error));
      },
    );
    return stop;
  }, []);

  if (user === undefined) return <p class="loading">Signing you in…</p>;
  if (user === null) return <SignIn notice={notice} />;
  return <Messenger me={user} />;
}
