// An app whose push notifications go to a local push service. Push notifications relay the whole
// outbox table, so the app gets a database of its own.
import { applyMigrations } from '../../src/db/migrate/index.ts';
import { ensureDatabase } from '../../src/db/pg-admin.ts';
import type { App, BuildAppOptions } from '../../src/server/app.ts';
import { scratchDatabaseUrl, startTestApp } from './helpers.ts';
import { startPushService, type PushService } from './push-service.ts';

export interface PushApp {
  app: App;
  push: PushService;
  /** Stops the app and the push service and drops the database. */
  stop(): Promise<void>;
}

export async function startPushApp(databaseName: string, options: Omit<BuildAppOptions, 'config'> = {}): Promise<PushApp> {
  const database = scratchDatabaseUrl(databaseName);
  await ensureDatabase(database.url);
  await applyMigrations({ databaseUrl: database.url });
  const push = await startPushService();
  const app = await startTestApp(
    { DATABASE_URL: database.url, PUSH_ALLOW_PRIVATE_ENDPOINTS: 'true', PUSH_COLLAPSE_WINDOW: '100ms' },
    { ...options, notifications: { pushTls: push.tls, ...options.notifications } },
  );
  return {
    app,
    push,
    async stop() {
      await app.stop();
      await push.close();
      await database.drop();
    },
  };
}
