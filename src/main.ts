// `npm start`: validate the environment, open the database (embedded by default), serve.
import { buildApp } from './server/app.ts';
import { loadConfigOrExit } from './env.ts';
import { createLogger } from './logger.ts';

const config = loadConfigOrExit();

const logger = createLogger(config.logLevel);
const app = await buildApp({ config, logger });
const { url } = await app.start();
const webClient = new URL('/', url).href;
if (config.exposure.graphiql) {
  logger.info({ url, webClient, graphiql: url }, `Kocmoc is listening on ${url}: open ${webClient} for the web client, ${url} for GraphiQL`);
} else {
  logger.info({ url, webClient }, `Kocmoc is listening on ${url}: open ${webClient} for the web client`);
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
