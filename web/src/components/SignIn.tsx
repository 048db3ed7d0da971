// Sign in or create an account. The API's messages (wrong password, username taken, too short)
// are shown as they come, next to the form.
import { useState } from 'preact/hooks';
import { login, register } from '../session.ts';
import { describe } from '../transport.ts';

export function SignIn({ notice }: { notice?: string }) {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const submit = async (event: SubmitEvent) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    const field = (name: string) => String(form.get(name) ?? '');
    setBusy(true);
    setError(undefined);
    try {
      if (mode === 'login') await login({ login: field('login'), password: field('password') });
      else await register({ username: field('username'), email: field('email'), password: field('password'), displayName: field('displayName') || undefined });
    } catch (caught) {
      setError(describe(caught));
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <h1>
        <img src="/icon.svg" alt="" width={40} height={40} /> Kocmoc
      </h1>
      <p class="muted">
        A demo client of the Kocmoc messenger API. Explore the API itself in <a href="/graphql">GraphiQL</a>.
      </p>
      {notice && <p class="notice">{notice}</p>}
      <div class="mode" role="tablist">
        <button type="button" role="tab" aria-selected={mode === 'login'} onClick={() => setMode('login')}>
          Sign in
        </button>
        <button type="button" role="tab" aria-selected={mode === 'register'} onClick={() => setMode('register')}>
          Create account
        </button>
      </div>
      <form onSubmit={submit}>
        {mode === 'login' ? (
          <label>
            Username or email
            <input name="login" autocomplete="username" required />
          </label>
        ) : (
          <>
            <label>
              Username
              <input name="username" autocomplete="username" required minLength={3} maxLength={32} pattern="[A-Za-z0-9_]+" />
            </label>
            <label>
              Display name
              <input name="displayName" autocomplete="name" maxLength={64} />
            </label>
            <label>
              Email
              <input name="email" type="email" autocomplete="email" required />
            </label>
          </>
        )}
        <label>
          Password
          <input name="password" type="password" autocomplete={mode === 'login' ? 'current-password' : 'new-password'} required minLength={8} />
        </label>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {mode === 'login' ? 'Sign in' : 'Create account'}
        </button>
      </form>
    </main>
  );
}
