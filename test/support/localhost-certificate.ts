// A self-signed certificate for https://127.0.0.1, for local HTTPS peers of the server (the push
// services of the tests and of the push bench). Made with openssl, in a new temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LocalhostCertificate {
  /** The temporary directory holding both files; the caller removes it when done. */
  dir: string;
  /** The certificate's file (for NODE_EXTRA_CA_CERTS of another process). */
  certFile: string;
  key: Buffer;
  cert: Buffer;
}

export function localhostCertificate(prefix: string): LocalhostCertificate {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const [keyFile, certFile] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile,
  ], { stdio: 'ignore' });
  return { dir, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
}
