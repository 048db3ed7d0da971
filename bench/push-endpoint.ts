// A local Web Push service for the push bench, in a process of its own so its CPU is not the
// sender's: HTTPS with a self-signed certificate (test/support/localhost-certificate.ts, as
// test/support/push-service.ts), one endpoint per device, answering 201 at once. It only records
// when each push arrived (its Topic, i.e. its chat) and
// keeps the encrypted body; a sample is decrypted (RFC 8291) after the measurement, off the clock,
// to check that what arrived is a real notification for the right message.
import type { ECDH } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import ece from 'http_ece';
import { localhostCertificate } from '../test/support/localhost-certificate.ts';
import { deviceEndpoints, newDeviceKeys } from '../test/support/push-service.ts';
import { forkChild, ownCpuMs, serveCommands, wallNow } from './push-child.ts';
import { sleep } from './stats.ts';

const CHILD_FLAG = '--push-endpoint-child';

export interface PushDeviceKeys {
  endpoint: string;
  p256dh: string;
  auth: string;
}

export interface Receipts {
  /** Arrival (wallNow) of every accepted push, with its device index and Topic header. */
  at: Float64Array;
  device: Int32Array;
  topic: string[];
  /** Decrypted payloads of every `sampleEvery`-th push. */
  samples: Array<{ device: number; topic: string; payload: any }>;
  undecryptable: number;
}

export interface PushEndpoint {
  pid: number;
  /** The self-signed certificate, for NODE_EXTRA_CA_CERTS of the sending processes. */
  certFile: string;
  createDevices(count: number): Promise<PushDeviceKeys[]>;
  /** Pushes accepted since the last `take`. */
  count(): Promise<number>;
  /** Waits until `expected` pushes arrived, or none arrived for `stallMs`; returns how many did. */
  waitFor(expected: number, stallMs?: number): Promise<number>;
  /** The receipts since the last take, which are then forgotten. */
  take(sampleEvery?: number): Promise<Receipts>;
  /** CPU of the service process so far. */
  cpuMs(): Promise<number>;
  close(): Promise<void>;
}

export async function startPushEndpoint(): Promise<PushEndpoint> {
  const child = forkChild(new URL(import.meta.url), CHILD_FLAG);
  const { certFile } = await child.call<{ certFile: string }>('start');
  const count = () => child.call<number>('count');
  return {
    pid: child.pid,
    certFile,
    createDevices: (total) => child.call('devices', { count: total }),
    count,
    async waitFor(expected, stallMs = 5_000) {
      let seen = await count();
      let lastProgress = Date.now();
      while (seen < expected && Date.now() - lastProgress < stallMs) {
        await sleep(25);
        const now = await count();
        if (now > seen) lastProgress = Date.now();
        seen = now;
      }
      return seen;
    },
    take: (sampleEvery = 50) => child.call('take', { sampleEvery }),
    cpuMs: () => child.call('cpu'),
    close: () => child.stop(),
  };
}

// ---- child side ----

interface Device {
  index: number;
  ecdh: ECDH;
  authSecret: Buffer;
}

function runService() {
  const certificate = localhostCertificate('kocmoc-bench-push-');
  const devices = new Map<string, Device>();
  let at: number[] = [];
  let deviceOf: number[] = [];
  let topics: string[] = [];
  let bodies: Buffer[] = [];
  let server: Server | undefined;
  let port = 0;

  const handle = deviceEndpoints(devices, (device, body, req, res) => {
    at.push(wallNow());
    deviceOf.push(device.index);
    topics.push(String(req.headers.topic ?? ''));
    bodies.push(body);
    res.writeHead(201, { location: `${req.url}/receipt` }).end();
  });

  serveCommands(
    {
      async start() {
        server = createServer({ key: certificate.key, cert: certificate.cert }, handle);
        // Senders keep connections between phases; a few seconds of idling must not close them.
        server.keepAliveTimeout = 60_000;
        await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
        port = (server.address() as AddressInfo).port;
        return { certFile: certificate.certFile };
      },
      async devices({ count }: { count: number }) {
        return Array.from({ length: count }, () => {
          const { id, ecdh, authSecret, p256dh, auth } = newDeviceKeys();
          devices.set(id, { index: devices.size, ecdh, authSecret });
          return { endpoint: `https://127.0.0.1:${port}/${id}`, p256dh, auth };
        });
      },
      count: async () => at.length,
      cpu: async () => ownCpuMs(),
      async take({ sampleEvery }: { sampleEvery: number }): Promise<Receipts> {
        const byIndex = [...devices.values()];
        const samples: Receipts['samples'] = [];
        let undecryptable = 0;
        for (let index = 0; index < bodies.length; index += sampleEvery) {
          const device = byIndex[deviceOf[index]!]!;
          try {
            const plaintext = ece.decrypt(bodies[index]!, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.authSecret });
            samples.push({ device: device.index, topic: topics[index]!, payload: JSON.parse(plaintext.toString('utf8')) });
          } catch {
            undecryptable++;
          }
        }
        const receipts = { at: Float64Array.from(at), device: Int32Array.from(deviceOf), topic: topics, samples, undecryptable };
        [at, deviceOf, topics, bodies] = [[], [], [], []];
        return receipts;
      },
    },
    async () => {
      server?.closeAllConnections();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      rmSync(certificate.dir, { recursive: true, force: true });
    },
  );
}

if (process.argv[2] === CHILD_FLAG && process.send) runService();
