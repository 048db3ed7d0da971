// `npm run worker`: the background worker process (its own service in docker-compose.yml). It runs
// push-notification jobs from Redis; any number of workers can run, and a job whose worker dies is
// taken over by another once its lock expires. SIGTERM lets running jobs finish within SHUTDOWN_TIMEOUT.
import { loadConfigOrExit } from './env.ts';
import { createLogger } from './logger.ts';
import { createNotifications } from './notifications/notifications.ts';
import { startBullWorker } from './notifications/queue.ts';
import { createPresenceReader } from './realtime/presence/reader.ts';
import { createCoreServices, presenceKeyPrefix } from './services.ts';
import { settledWithin, shutdownBudget, WORK_SHARE } from './shutdown.ts';
import { startTracing, traceTasks } from './tracing/tracing.ts';

const config = loadConfigOrExit();
const logger = createLogger(config.logLevel).child({ role: 'worker' });
if (!config.redisUrl || !config.database.url) {
  logger.error('the worker needs REDIS_URL and DATABASE_URL; without Redis, `npm start` processes notifications itself');
  process.exit(1);
}

// Undefined (and no SDK loaded) without OTEL_EXPORTER_OTLP_ENDPOINT.
const tracing = await startTracing(config.tracing, '-worker');
const core = createCoreServices(config, logger, {
  databaseUrl: config.database.url,
  databasePoolSize: Math.min(config.jobs.concurrency, 20),
  workerThreads: Math.min(config.workers.threads, 2),
  tracer: tracing?.tracer,
});
// Which recipients have a live connection (reported by the API instances).
const notifications = createNotifications({ ...core, presence: createPresenceReader({ redis: core.redis!, keyPrefix: presenceKeyPrefix(config) }) });
const worker = startBullWorker({
  redisUrl: config.redisUrl,
  prefix: config.jobs.queuePrefix,
  process: notifications.process,
  tracer: tracing?.tracer,
  logger,
  concurrency: config.jobs.concurrency,
  lockDurationMs: config.jobs.lockDurationMs,
});
if (tracing) traceTasks(tracing, core.pool);
// Relays the outbox too, so messages still reach the queue while no API instance runs.
notifications.start();
logger.info({ concurrency: config.jobs.concurrency }, 'notification worker started');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    const budget = shutdownBudget(config.shutdownTimeoutMs);
    logger.info({ signal }, 'worker stopping: finishing running jobs');
    try {
      // Takes no new job, and lets the running ones finish while the budget allows.
      if (!(await settledWithin(worker.close(), budget.until(WORK_SHARE)))) {
        logger.warn('jobs still running at SHUTDOWN_TIMEOUT: another worker takes them over once their lock (JOB_LOCK_DURATION) expires');
      }
      await budget.finish(async () => {
        await notifications.stop();
        await core.close();
        await tracing?.shutdown();
      }, logger);
      logger.info('worker stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'worker shutdown failed');
      process.exit(1);
    }
  });
}
