// deploy/kubernetes: expanded as kustomize does, every object validated against the Kubernetes
// OpenAPI schemas (kubernetes-models; the Prometheus Operator's for the ServiceMonitor), and the
// pieces checked to fit each other and the app (probes, drain budget, selectors, ports, config).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import pkg from '../package.json' with { type: 'json' };
import { ConfigError, loadConfig } from '../src/env.ts';
import { kustomize, type Manifest } from './support/kustomize.ts';

const base = fileURLToPath(new URL('../deploy/kubernetes/base', import.meta.url));
const production = fileURLToPath(new URL('../deploy/kubernetes/overlays/production', import.meta.url));

/** The kubernetes-models class of an object's apiVersion and kind. */
async function modelOf(manifest: Manifest): Promise<new (data: unknown) => { validate(): void }> {
  const [group, version] = manifest.apiVersion.includes('/') ? manifest.apiVersion.split('/') : ['', manifest.apiVersion];
  const module =
    group === 'monitoring.coreos.com'
      ? await import(`@kubernetes-models/prometheus-operator/${group}/${version}/${manifest.kind}`)
      : await import(group ? `kubernetes-models/${group}/${version}/${manifest.kind}` : `kubernetes-models/${version}/${manifest.kind}`);
  return module[manifest.kind];
}

const find = (manifests: Manifest[], kind: string, name: string) => {
  const manifest = manifests.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  if (!manifest) throw new Error(`no ${kind} ${name}`);
  return manifest as Manifest & { spec: any; data?: Record<string, string>; stringData?: Record<string, string> };
};

const seconds = (duration: string) => Number(/^(\d+)s$/.exec(duration)![1]);

describe.each([
  ['base', base],
  ['production overlay', production],
])('deploy/kubernetes %s', (_label, dir) => {
  const manifests = kustomize(dir);
  const api = find(manifests, 'Deployment', 'kocmoc-api');
  const apiPod = api.spec.template.spec;
  const apiContainer = apiPod.containers[0];
  const config = find(manifests, 'ConfigMap', 'kocmoc-config').data!;

  it('has every object the issue lists, each valid against its Kubernetes schema', async () => {
    expect(manifests.map((manifest) => `${manifest.kind}/${manifest.metadata.name}`).sort()).toEqual([
      'ConfigMap/kocmoc-config',
      'Deployment/kocmoc-api',
      'Deployment/kocmoc-worker',
      'HorizontalPodAutoscaler/kocmoc-api',
      'Ingress/kocmoc-api',
      'PersistentVolumeClaim/kocmoc-uploads',
      'PodDisruptionBudget/kocmoc-api',
      'Secret/kocmoc-secrets',
      'Service/kocmoc-api',
      'ServiceMonitor/kocmoc-api',
    ]);
    for (const manifest of manifests) {
      const Model = await modelOf(manifest);
      expect(() => new Model(manifest).validate(), `${manifest.kind}/${manifest.metadata.name}`).not.toThrow();
    }
  });

  it('fails schema validation on a wrong type, so the check above can fail', async () => {
    const broken = structuredClone(api);
    broken.spec.template.spec.containers[0].ports[0].containerPort = 'http';
    const Model = await modelOf(broken);
    expect(() => new Model(broken).validate()).toThrow(/containerPort must be integer/);
  });

  it('probes /ready for readiness and /health for liveness on the API port', () => {
    expect(apiContainer.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
    expect(apiContainer.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(apiContainer.ports.find((port: { name: string }) => port.name === 'http').containerPort).toBe(4000);
  });

  it('drains within the grace period: preStop sleep + SHUTDOWN_TIMEOUT < terminationGracePeriodSeconds', () => {
    const [command, sleep] = apiContainer.lifecycle.preStop.exec.command;
    expect(command).toBe('sleep');
    expect(Number(sleep)).toBeGreaterThan(0);
    expect(Number(sleep) + seconds(config.SHUTDOWN_TIMEOUT!)).toBeLessThan(apiPod.terminationGracePeriodSeconds);
    const worker = find(manifests, 'Deployment', 'kocmoc-worker').spec.template.spec;
    const workerTimeout = worker.containers[0].env.find((variable: { name: string }) => variable.name === 'SHUTDOWN_TIMEOUT').value;
    expect(seconds(workerTimeout)).toBeLessThan(worker.terminationGracePeriodSeconds);
  });

  it('runs what `npm start` and `npm run worker` run', () => {
    expect(apiContainer.command.join(' ')).toBe(pkg.scripts.start);
    expect(find(manifests, 'Deployment', 'kocmoc-worker').spec.template.spec.containers[0].command.join(' ')).toBe(pkg.scripts.worker);
  });

  it('points the Service, PDB, HPA, Ingress and ServiceMonitor at the API pods and ports', () => {
    const podLabels = api.spec.template.metadata.labels;
    const service = find(manifests, 'Service', 'kocmoc-api');
    expect(podLabels).toMatchObject(service.spec.selector);
    expect(podLabels).toMatchObject(find(manifests, 'PodDisruptionBudget', 'kocmoc-api').spec.selector.matchLabels);
    expect(find(manifests, 'HorizontalPodAutoscaler', 'kocmoc-api').spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'kocmoc-api' });
    const containerPorts = new Set(apiContainer.ports.map((port: { name: string }) => port.name));
    for (const port of service.spec.ports) expect(containerPorts).toContain(port.targetPort);
    const backend = find(manifests, 'Ingress', 'kocmoc-api').spec.rules[0].http.paths[0].backend.service;
    expect(backend.name).toBe('kocmoc-api');
    expect(service.spec.ports.map((port: { name: string }) => port.name)).toContain(backend.port.name);
    const monitor = find(manifests, 'ServiceMonitor', 'kocmoc-api').spec;
    expect(service.metadata.labels).toMatchObject(monitor.selector.matchLabels);
    expect(monitor.endpoints[0].port).toBe('metrics');
    const metricsPort = apiContainer.ports.find((port: { name: string }) => port.name === 'metrics').containerPort;
    expect(String(metricsPort)).toBe(config.METRICS_PORT);
  });

  it('keeps idle WebSockets open through the Ingress far beyond the 12 s keep-alive ping', () => {
    const annotations = find(manifests, 'Ingress', 'kocmoc-api').metadata.annotations!;
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(3600);
  });

  it('gives a valid production config once the Secret is filled, and refuses to start on its placeholders', () => {
    const secret = find(manifests, 'Secret', 'kocmoc-secrets').stringData!;
    const containerEnv = Object.fromEntries(apiContainer.env.map((variable: { name: string; value: string }) => [variable.name, variable.value]));
    const placeholders = { ...config, ...secret, ...containerEnv };
    expect(() => loadConfig(placeholders)).toThrow(ConfigError);
    const filled = {
      ...placeholders,
      DATABASE_URL: 'postgresql://kocmoc:secret@pgbouncer:6432/kocmoc',
      REDIS_URL: 'redis://redis:6379',
      JWT_SECRET: randomBytes(32).toString('base64url'),
      MESSAGE_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      VAPID_PUBLIC_KEY: 'BExamplePublicKey',
      VAPID_PRIVATE_KEY: 'examplePrivateKey',
      VAPID_SUBJECT: 'mailto:ops@example.org',
    };
    expect(Object.keys(secret).sort()).toEqual(expect.arrayContaining(['DATABASE_URL', 'JWT_SECRET', 'MESSAGE_ENCRYPTION_KEY', 'REDIS_URL']));
    const loaded = loadConfig(filled);
    expect(loaded.env).toBe('production');
    expect(loaded.exposure.metrics.port).toBe(9464);
    expect(loaded.shutdownTimeoutMs).toBe(20_000);
  });
});

describe('deploy/kubernetes production overlay', () => {
  it('changes the namespace, image, host, replica bounds and storage', () => {
    const manifests = kustomize(production);
    expect(new Set(manifests.map((manifest) => manifest.metadata.namespace))).toEqual(new Set(['kocmoc']));
    expect(find(manifests, 'Deployment', 'kocmoc-api').spec.template.spec.containers[0].image).toBe('registry.example.com/kocmoc:0.1.0');
    expect(find(manifests, 'Deployment', 'kocmoc-worker').spec.replicas).toBe(2);
    expect(find(manifests, 'Ingress', 'kocmoc-api').spec.rules.map((rule: { host: string }) => rule.host)).toEqual(['chat.example.org']);
    expect(find(manifests, 'HorizontalPodAutoscaler', 'kocmoc-api').spec).toMatchObject({ minReplicas: 3, maxReplicas: 20 });
    expect(find(manifests, 'PersistentVolumeClaim', 'kocmoc-uploads').spec.storageClassName).toBe('nfs');
    // The patch added RATE_LIMITS beside the base's variables instead of replacing them.
    const env = find(manifests, 'Deployment', 'kocmoc-api').spec.template.spec.containers[0].env.map((variable: { name: string }) => variable.name);
    expect(env).toEqual(['RATE_LIMITS', 'PORT', 'UPLOAD_DIR']);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
  it.skipIf(kubectl.status !== 0)('expands as `kubectl kustomize` does (skipped without kubectl)', () => {
    const built = spawnSync('kubectl', ['kustomize', production], { encoding: 'utf8' });
    expect(built.status, built.stderr).toBe(0);
    const byId = (manifests: Manifest[]) => Object.fromEntries(manifests.map((manifest) => [`${manifest.kind}/${manifest.metadata.name}`, manifest]));
    const theirs = parseAllDocuments(built.stdout).map((document) => document.toJS() as Manifest);
    expect(byId(kustomize(production))).toEqual(byId(theirs));
  });
  if (kubectl.status !== 0) console.warn('kubectl not found: the kustomize cross-check is skipped');
});
