// Push subscriptions and direct chats for the push bench, written straight into the database (users,
// sessions and groups come from bench/ws-fixtures.ts): registering a thousand devices through the
// API would mostly measure argon2. Rows look exactly like the API's: a subscription belongs to a
// live device session, a direct chat has its directKey and two members.
import pg from 'pg';
import { uuidv7 } from '../src/ids.ts';
import type { PushDeviceKeys } from './push-endpoint.ts';
import type { BenchUser } from './ws-fixtures.ts';

/** One subscription per user (device i for user i); returns the subscription ids in the same order. */
export async function addPushSubscriptions(databaseUrl: string, users: BenchUser[], devices: PushDeviceKeys[]): Promise<string[]> {
  const ids = users.map(() => uuidv7());
  await withClient(databaseUrl, (client) =>
    client.query(
      `INSERT INTO "PushSubscription" ("id", "userId", "sessionId", "endpoint", "p256dh", "auth", "updatedAt")
       SELECT * , now() FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
      [ids, users.map((u) => u.userId), users.map((u) => u.sessionId), ...(['endpoint', 'p256dh', 'auth'] as const).map((key) => devices.map((d) => d[key]))],
    ),
  );
  return ids;
}

/** A DIRECT chat per pair, created by the first of the two. */
export async function createDirectChats(databaseUrl: string, pairs: Array<[string, string]>): Promise<string[]> {
  const chatIds = pairs.map(() => uuidv7());
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `INSERT INTO "Chat" ("id", "kind", "directKey", "createdById")
       SELECT id, 'DIRECT', direct_key, created_by FROM unnest($1::text[], $2::text[], $3::text[]) AS input(id, direct_key, created_by)`,
      [chatIds, pairs.map((pair) => [...pair].sort().join(':')), pairs.map(([first]) => first)],
    );
    await client.query(
      `INSERT INTO "ChatMember" ("chatId", "userId")
       SELECT * FROM unnest($1::text[], $2::text[])`,
      [chatIds.flatMap((id) => [id, id]), pairs.flat()],
    );
  });
  return chatIds;
}

async function withClient<T>(databaseUrl: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}
