// METRICS_PORT: /metrics on a listener of its own, bound to METRICS_HOST (an internal interface),
// so the API's public port never serves it. METRICS_TOKEN, when set, is required here too.
import { createServer, type Server } from 'node:http';
import type { Config } from '../env.ts';
import type { Metrics } from './metrics.ts';

export async function listenForMetrics(exposure: Config['exposure']['metrics'], metrics: Pick<Metrics, 'respond'>): Promise<Server> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://metrics').pathname;
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: GET /metrics\n');
      return;
    }
    metrics
      .respond(request.headers.authorization ?? null)
      .then((answer) => response.writeHead(answer.status, answer.headers).end(answer.body))
      .catch(() => response.writeHead(500).end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(exposure.port, exposure.host, resolve);
  });
  return server;
}
