// `npm run worker`: the background worker process (its own service in docker-compose.yml). It runs
// push-notification jobs from Redis; any number of workers can run, and a job whose worker dies is
// taken over by another once its lock expires. SIGTERM lets running jobs finish within SHUTDOWN_TIMEOUT.
import { Redis } from 'ioredis';
import { createContentCipher } from '../src/crypto/content-cipher.ts';
import { createPrisma } from '../src/db/client.ts';
import { loadConfigOrExit } from '../src/env.ts';
import { createLogger } from '../src/logger.ts';
import { createNotifications } from '../src/notifications/notifications.ts';
import { startBullWorker } from '../src/notifications/queue.ts';
import { createPresenceReader } from '../src/realtime/presence/reader.ts';
import { settledWithin, shutdownBudget, WORK_SHARE } from '../src/shutdown.ts';
import { createWorkerPool } from '../src/worker-pool.ts';

const config = loadConfigOrExit();
const logger = createLogger(config.logLevel).child({ role: 'worker' });
if (!config.redisUrl || !config.database.url) {
  logger.error('the worker needs REDIS_URL and DATABASE_URL; without Redis, `npm start` processes notifications itself');
  process.exit(1);
}

const prisma = createPrisma(config.database.url, { poolSize: Math.min(config.jobs.concurrency, 20) });
const pool = createWorkerPool({ ...config.workers, threads: Math.min(config.workers.threads, 2) });
const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3 });
redis.on('error', (error) => logger.warn({ err: error }, 'redis error'));
// Which recipients have a live connection (reported by the API instances).
const presence = createPresenceReader({ redis });
const notifications = createNotifications({
  config,
  prisma,
  cipher: createContentCipher({ keyring: config.messageEncryption, pool }),
  presence,
  logger,
});
const worker = startBullWorker({
  redisUrl: config.redisUrl,
  prefix: config.jobs.queuePrefix,
  process: notifications.process,
  logger,
  concurrency: config.jobs.concurrency,
  lockDurationMs: config.jobs.lockDurationMs,
});
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
        await Promise.allSettled([pool.close(), prisma.$disconnect(), redis.quit()]);
      }, logger);
      logger.info('worker stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'worker shutdown failed');
      process.exit(1);
    }
  });
}
