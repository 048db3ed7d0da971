// The signed-in session. The access token lives in memory only; the refresh token is kept in
// localStorage so a reload (or a new tab) finds it. The page's strict Content-Security-Policy (no
// inline or foreign scripts) is what keeps other code from reading it. The access token is
// refreshed a minute before it expires, and a refresh token is used once: tabs take turns through
// a Web Lock and each starts from the newest token in storage, so two tabs never spend the same one
// (which the server would take for a stolen token, ending the session).
import { LoginMutation, LogoutMutation, RefreshTokenMutation, RegisterMutation, type AuthPayload, type User } from '@kocmoc/client/documents';
import type { VariablesOf } from '@kocmoc/client/documents';
import { ApiError, run } from './transport.ts';

const STORAGE_KEY = 'kocmoc.refreshToken';
/** Refresh this long before the access token expires: a minute, or a quarter of a shorter lifetime. */
const refreshAheadMs = (lifetimeMs: number) => Math.min(60_000, lifetimeMs / 4);

let access: { token: string; expiresAt: number; refreshAheadMs: number } | undefined;
let current: User | null = null;
let refreshTimer: ReturnType<typeof setTimeout> | undefined;
let refreshing: Promise<void> | undefined;
const listeners = new Set<(user: User | null, reason?: string) => void>();

/** Called with the user on sign-in and with null (and why) on sign-out. Returns the unsubscribe. */
export function onSessionChange(listener: (user: User | null, reason?: string) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export const currentUser = () => current;

function adopt(payload: AuthPayload) {
  localStorage.setItem(STORAGE_KEY, payload.refreshToken);
  const expiresAt = Date.parse(payload.accessTokenExpiresAt);
  access = { token: payload.accessToken, expiresAt, refreshAheadMs: refreshAheadMs(expiresAt - Date.now()) };
  clearTimeout(refreshTimer);
  const delay = Math.max(1_000, expiresAt - Date.now() - access.refreshAheadMs);
  refreshTimer = setTimeout(() => void refresh().catch(() => {}), delay);
  const signedIn = !current;
  current = payload.user;
  if (signedIn) for (const listener of listeners) listener(current);
}

function end(reason?: string) {
  clearTimeout(refreshTimer);
  access = undefined;
  localStorage.removeItem(STORAGE_KEY);
  if (!current) return;
  current = null;
  for (const listener of listeners) listener(null, reason);
}

export async function register(input: VariablesOf<typeof RegisterMutation>['input']): Promise<void> {
  adopt((await run(RegisterMutation, { input })).register);
}

export async function login(input: VariablesOf<typeof LoginMutation>['input']): Promise<void> {
  adopt((await run(LoginMutation, { input })).login);
}

/** Signs out on the server (this device's session only) and here. */
export async function logout(): Promise<void> {
  const refreshToken = localStorage.getItem(STORAGE_KEY);
  try {
    if (refreshToken) await run(LogoutMutation, { refreshToken });
  } finally {
    end();
  }
}

/** On page load: resumes the session of a stored refresh token. False when there is none (or it ended). */
export async function restore(): Promise<boolean> {
  if (!localStorage.getItem(STORAGE_KEY)) return false;
  await refresh();
  return current !== null;
}

/** Trades the newest stored refresh token for new tokens; one refresh at a time, across tabs too. */
function refresh(): Promise<void> {
  refreshing ??= withRefreshLock(async () => {
    const refreshToken = localStorage.getItem(STORAGE_KEY);
    if (!refreshToken) return end('You were signed out.');
    try {
      adopt((await run(RefreshTokenMutation, { refreshToken })).refreshToken);
    } catch (error) {
      // The session ended (signed out elsewhere, expired, or the token was reused): sign in again.
      if (error instanceof ApiError && error.code !== 'NETWORK' && error.code !== 'RATE_LIMITED') return end('Your session ended. Please sign in again.');
      // Offline for now: try again shortly with the same token.
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => void refresh().catch(() => {}), 5_000);
      throw error;
    }
  }).finally(() => (refreshing = undefined));
  return refreshing;
}

/** Web Locks exist in secure contexts (https, localhost); elsewhere a tab refreshes alone. */
function withRefreshLock(fn: () => Promise<void>): Promise<void> {
  return navigator.locks ? navigator.locks.request('kocmoc-refresh', fn) : fn();
}

/** A valid access token: refreshed first if the timer has not (a computer woken from sleep). */
export async function accessToken(): Promise<string> {
  if (!access || access.expiresAt - Date.now() < access.refreshAheadMs / 2) await refresh();
  if (!access) throw new ApiError('You are signed out.', 'UNAUTHENTICATED');
  return access.token;
}

/** The server refused our token (its session ended?): refresh once, or sign out. */
export async function tokenRefused(): Promise<void> {
  access = undefined;
  await refresh();
}

// Another tab signed out (it removed the stored token): sign out here too.
addEventListener('storage', (event) => {
  if (event.key === STORAGE_KEY && event.newValue === null) end('You signed out in another tab.');
});
