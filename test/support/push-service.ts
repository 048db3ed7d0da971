// A real local Web Push service: HTTPS with a self-signed certificate, decrypting each aes128gcm
// payload (RFC 8291) with the subscription's private key, answering as each test scripts it.
import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import ece from 'http_ece';
import { localhostCertificate } from './localhost-certificate.ts';

export interface PushDevice {
  endpoint: string;
  keys: { p256dh: string; auth: string };
  /** Payloads received and accepted (status 201), decrypted. */
  accepted: any[];
  /** Every request, with the status answered (null while held). */
  requests: Array<{ status: number | null; headers: Record<string, string | string[] | undefined> }>;
  /** Statuses to answer next, in order ('hold' never answers, 'slow' answers 201 after 1.5 s); afterwards 201. */
  script: Array<number | 'hold' | 'slow'>;
}

export interface PushService {
  /** The certificate file (for NODE_EXTRA_CA_CERTS of a worker process). */
  certFile: string;
  /** TLS options that trust the service (the app's `notifications.pushTls`). */
  tls: { ca: Buffer };
  device(script?: Array<number | 'hold' | 'slow'>): PushDevice;
  /** Resolves when `device` has `count` accepted payloads. */
  waitFor(device: PushDevice, count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** Keys of a new push subscription: the device keeps the ECDH private key and auth secret to decrypt. */
export function newDeviceKeys() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const authSecret = randomBytes(16);
  return { id: randomBytes(8).toString('hex'), ecdh, authSecret, p256dh: ecdh.getPublicKey('base64url'), auth: authSecret.toString('base64url') };
}

/**
 * A request listener for a push service with one endpoint per device (`/<id>`): reads each body,
 * answers 404 for a device it does not know, and hands the rest to `handle`.
 */
export function deviceEndpoints<D>(devices: ReadonlyMap<string, D>, handle: (device: D, body: Buffer, req: IncomingMessage, res: ServerResponse) => void) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const device = devices.get(req.url!.slice(1));
      if (device) handle(device, Buffer.concat(chunks), req, res);
      else res.writeHead(404).end();
    });
  };
}

export async function startPushService(): Promise<PushService> {
  const { dir, certFile, key, cert } = localhostCertificate('kocmoc-push-');
  const devices = new Map<string, PushDevice & { ecdh: ECDH; authSecret: Buffer }>();
  const waiters = new Set<() => void>();
  const held = new Set<ServerResponse>();

  const server: Server = createServer(
    { key, cert },
    deviceEndpoints(devices, (device, body, req, res) => {
      const request = { status: null as number | null, headers: req.headers };
      device.requests.push(request);
      const next = device.script.shift() ?? 201;
      if (next === 'hold') {
        held.add(res);
        return;
      }
      const answer = (status: number) => {
        request.status = status;
        if (status === 201) {
          const plaintext = ece.decrypt(body, { version: 'aes128gcm', privateKey: device.ecdh, authSecret: device.authSecret });
          device.accepted.push(JSON.parse(plaintext.toString('utf8')));
          for (const wake of waiters) wake();
        }
        res.writeHead(status, status === 201 ? { location: `${req.url}/receipt` } : {}).end();
      };
      if (next === 'slow') setTimeout(() => answer(201), 1_500);
      else answer(next);
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    certFile,
    tls: { ca: cert },
    device(script: Array<number | 'hold' | 'slow'> = []) {
      const { id, ecdh, authSecret, p256dh, auth } = newDeviceKeys();
      const device = {
        endpoint: `https://127.0.0.1:${port}/${id}`,
        keys: { p256dh, auth },
        accepted: [],
        requests: [],
        script: [...script],
        ecdh,
        authSecret,
      };
      devices.set(id, device);
      return device;
    },
    async waitFor(device, count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (device.accepted.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} pushes, got ${device.accepted.length} (requests: ${device.requests.map((r) => r.status).join(',')})`);
        await new Promise<void>((resolve) => {
          waiters.add(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
