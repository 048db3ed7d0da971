// No Docker engine runs in CI: the compose file is checked by parsing it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import pkg from '../package.json' with { type: 'json' };

// Merge keys (`<<:`), as Docker Compose reads them.
const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8'), { merge: true });

describe('docker-compose.yml', () => {
  it('defines postgres, redis, api, worker and coturn, and Jaeger only in the tracing profile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'coturn', 'jaeger', 'postgres', 'redis', 'worker']);
    const always = Object.entries(compose.services).filter(([, service]) => !(service as { profiles?: string[] }).profiles).map(([name]) => name);
    expect(always.sort()).toEqual(['api', 'coturn', 'postgres', 'redis', 'worker']);
    expect(compose.services.jaeger.profiles).toEqual(['tracing']);
    expect(compose.services.jaeger.environment.COLLECTOR_OTLP_ENABLED).toBe('true');
    expect(compose.services.worker.environment.OTEL_EXPORTER_OTLP_ENDPOINT).toMatch(/OTEL_EXPORTER_OTLP_ENDPOINT/);
  });

  it('runs coturn with use-auth-secret and the secret the api signs TURN credentials with', () => {
    const { command, ports } = compose.services.coturn;
    expect(command).toContain('--use-auth-secret');
    const secret = command.find((arg: string) => arg.startsWith('--static-auth-secret='));
    expect(secret).toMatch(/\$\{TURN_SECRET/);
    expect(compose.services.api.environment.TURN_SECRET).toMatch(/^\$\{TURN_SECRET/);
    expect(compose.services.api.environment.TURN_URLS).toMatch(/turn:.*:3478/);
    expect(ports).toEqual(expect.arrayContaining(['3478:3478/udp', '49160-49200:49160-49200/udp']));
  });

  it('points the api and the worker at the compose database and redis', () => {
    for (const name of ['api', 'worker']) {
      const env = compose.services[name].environment;
      expect(env.DATABASE_URL).toMatch(/@postgres:5432\//);
      expect(env.REDIS_URL).toBe('redis://redis:6379');
      expect(env.NODE_ENV).toBe('production');
      expect(env.JWT_SECRET).toMatch(/JWT_SECRET/);
      expect(env.MESSAGE_ENCRYPTION_KEY).toMatch(/MESSAGE_ENCRYPTION_KEY/);
      expect(env.VAPID_PUBLIC_KEY).toMatch(/VAPID_PUBLIC_KEY/);
    }
  });

  it('runs what `npm start` and `npm run worker` run, without npm in between', () => {
    expect(`${compose.services.api.command.join(' ')}`).toBe(pkg.scripts.start);
    expect(`${compose.services.worker.command.join(' ')}`).toBe(pkg.scripts.worker);
  });

  it('gives each service a SHUTDOWN_TIMEOUT within the grace period before `docker stop` kills it', () => {
    const { api, worker } = compose.services;
    // Docker's default grace period is 10 s, the default SHUTDOWN_TIMEOUT too.
    expect(api.stop_grace_period).toBeUndefined();
    expect(api.environment.SHUTDOWN_TIMEOUT).toBeUndefined();
    expect(worker.environment.SHUTDOWN_TIMEOUT).toBe(worker.stop_grace_period);
  });

  it('waits for healthy dependencies', () => {
    expect(compose.services.api.depends_on.postgres.condition).toBe('service_healthy');
    expect(compose.services.api.depends_on.redis.condition).toBe('service_healthy');
    expect(compose.services.postgres.healthcheck.test.join(' ')).toMatch(/pg_isready/);
    expect(compose.services.api.ports).toContain('4000:4000');
  });
});
