// Accounts and device sessions: register, login, refresh, logout.
import { login, register } from '../auth/accounts.ts';
import { endSession, refreshSession, type AuthPayload } from '../auth/sessions.ts';
import type { Context } from '../context.ts';
import { builder } from './builder.ts';
import { UserRef } from './users.ts';

/** The rest of this request acts as the session it just opened (so `user.email` is visible). */
async function signedIn(ctx: Context, pending: Promise<AuthPayload>): Promise<AuthPayload> {
  const payload = await pending;
  ctx.viewer = { userId: payload.user.id, sessionId: payload.sessionId };
  ctx.authError = null;
  return payload;
}

const deviceOf = (ctx: Context) => ({ userAgent: ctx.userAgent, address: ctx.clientAddress });

/** Refreshes count per device session; tokens that are not genuine, per address. */
function refreshLimitKey(ctx: Context, refreshToken: string): string {
  const presented = ctx.tokens.readRefreshToken(refreshToken);
  if (!presented) return `address:${ctx.clientAddress}`;
  return presented.kind === 'legacy' ? `legacy:${presented.tokenHash}` : `session:${presented.sessionId}`;
}

const AuthPayloadRef = builder.objectRef<AuthPayload>('AuthPayload').implement({
  description: 'Tokens for one device session.',
  fields: (t) => ({
    accessToken: t.exposeString('accessToken', {
      description: 'Send as `Authorization: Bearer <accessToken>`; short-lived.',
    }),
    accessTokenExpiresAt: t.expose('accessTokenExpiresAt', { type: 'DateTime', description: 'When the access token stops working: refresh before.' }),
    refreshToken: t.exposeString('refreshToken', {
      description: 'Trade it for new tokens with `refreshToken` before it expires. Single use: keep only the newest.',
    }),
    user: t.field({ type: UserRef, description: 'Who is signed in.', resolve: (payload) => payload.user }),
  }),
});

const RegisterInput = builder.inputType('RegisterInput', {
  description: 'A new account.',
  fields: (t) => ({
    email: t.string({ required: true, description: 'Your email address; unique, never shown to others.' }),
    username: t.string({ required: true, description: '3 to 32 characters: letters, digits, underscores.' }),
    password: t.string({ required: true, description: 'At least 8 characters.' }),
    displayName: t.string({ required: false, description: 'Defaults to the username.' }),
  }),
});

const LoginInput = builder.inputType('LoginInput', {
  description: 'Who signs in.',
  fields: (t) => ({
    login: t.string({ required: true, description: 'Email or username.' }),
    password: t.string({ required: true, description: 'The account\'s password.' }),
  }),
});

builder.mutationFields((t) => ({
  register: t.field({
    type: AuthPayloadRef,
    description: 'Creates an account and signs it in on this device.',
    args: { input: t.arg({ type: RegisterInput, required: true, description: 'The new account.' }) },
    resolve: (_root, { input }, ctx) => signedIn(ctx, register(ctx, input, deviceOf(ctx))),
  }),
  login: t.field({
    type: AuthPayloadRef,
    description: 'Signs in on a new device session.',
    args: { input: t.arg({ type: LoginInput, required: true, description: 'Who signs in, and their password.' }) },
    resolve: (_root, { input }, ctx) => signedIn(ctx, login(ctx, input, deviceOf(ctx))),
  }),
  refreshToken: t.field({
    type: AuthPayloadRef,
    description: 'Rotates a refresh token. Reusing a spent refresh token ends its session.',
    args: { refreshToken: t.arg.string({ required: true, description: 'The newest refresh token of the session.' }) },
    resolve: async (_root, args, ctx) => {
      await ctx.rateLimits.consume('refresh', refreshLimitKey(ctx, args.refreshToken));
      return signedIn(ctx, refreshSession(ctx, args.refreshToken));
    },
  }),
  logout: t.boolean({
    description: "Ends the caller's session (or the one the refresh token belongs to); its access tokens stop working at once.",
    args: { refreshToken: t.arg.string({ required: false, description: 'End the session of this refresh token (one of yours, or any when signed out) instead of the caller\'s.' }) },
    resolve: async (_root, args, ctx) => {
      await endSession(ctx, ctx.viewer, args.refreshToken);
      return true;
    },
  }),
}));
