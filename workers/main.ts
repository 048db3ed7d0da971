// `npm run worker`: the background worker process (its own service in docker-compose.yml).
// Push-notification jobs (BullMQ) are processed here once that feature lands; until then the
// process validates its configuration and waits, so deployments can already run the service.
import { ConfigError, loadConfig } from '../src/env.ts';
import { createLogger } from '../src/logger.ts';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}
const logger = createLogger(config.logLevel);
logger.info({ redis: Boolean(config.redisUrl) }, 'worker started: no job queues are defined yet');
const keepAlive = setInterval(() => {}, 1 << 30);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    clearInterval(keepAlive);
    logger.info({ signal }, 'worker stopped');
  });
}
