// Accounts and chats for the WebSocket benches, written straight into the database: registering
// tens of thousands of users through the API would spend minutes on argon2 alone. Every user gets
// one device session and an access token signed by the app's own token service, so connections
// authenticate exactly as a real client's do (signature, expiry, live-session lookup).
//
// Plain SQL over a short-lived pg client, not Prisma: Prisma caches the plan of every query shape,
// and a 5,000-row createMany is a shape of its own that would stay in the server's heap (hundreds
// of MiB) and blur the memory measured per connection.
import pg from 'pg';
import type { App } from '../src/server/app.ts';
import { uuidv7 } from '../src/ids.ts';
import { hashPassword } from '../workers/passwords.ts';

export interface BenchUser {
  userId: string;
  sessionId: string;
  accessToken: string;
}

export async function createBenchUsers(app: App, count: number, label: string): Promise<BenchUser[]> {
  const { tokens, config } = app.services;
  // One real hash, reused: nobody logs in with a password here.
  const passwordHash = hashPassword({ password: 'bench password', ...config.auth.passwordHash });
  const prefix = `${label}_${Date.now().toString(36)}_`;
  const userIds = Array.from({ length: count }, () => uuidv7());
  const sessionIds = Array.from({ length: count }, () => uuidv7());
  const usernames = userIds.map((_, index) => `${prefix}${index}`);

  await withClient(app.databaseUrl, async (client) => {
    await client.query(
      `INSERT INTO "User" ("id", "email", "username", "passwordHash", "displayName", "status", "updatedAt")
       SELECT id, username || '@bench.invalid', username, $3, 'Bench ' || username, 'ONLINE', now()
       FROM unnest($1::text[], $2::text[]) AS input(id, username)`,
      [userIds, usernames, passwordHash],
    );
    await client.query(
      `INSERT INTO "Session" ("id", "userId", "userAgent", "expiresAt")
       SELECT id, user_id, 'kocmoc-bench', $3 FROM unnest($1::text[], $2::text[]) AS input(id, user_id)`,
      [sessionIds, userIds, new Date(Date.now() + tokens.refreshTokenTtlMs)],
    );
  });
  return Promise.all(
    userIds.map(async (userId, index) => {
      const sessionId = sessionIds[index]!;
      return { userId, sessionId, accessToken: (await tokens.issueAccessToken({ userId, sessionId })).token };
    }),
  );
}

/** A GROUP chat owned by the first member, with everyone in it. */
export async function createGroupChat(app: App, memberIds: string[], title: string): Promise<string> {
  const chatId = uuidv7();
  await withClient(app.databaseUrl, async (client) => {
    await client.query(`INSERT INTO "Chat" ("id", "kind", "title", "createdById") VALUES ($1, 'GROUP', $2, $3)`, [chatId, title, memberIds[0]]);
    await client.query(
      `INSERT INTO "ChatMember" ("chatId", "userId", "role")
       SELECT $1, user_id, CASE WHEN ordinality = 1 THEN 'OWNER'::"ChatRole" ELSE 'MEMBER'::"ChatRole" END
       FROM unnest($2::text[]) WITH ORDINALITY AS input(user_id, ordinality)`,
      [chatId, memberIds],
    );
  });
  return chatId;
}

async function withClient(databaseUrl: string, body: (client: pg.Client) => Promise<void>) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await body(client);
  } finally {
    await client.end();
  }
}
