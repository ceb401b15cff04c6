/**
 * TLS for ingress, the only process that holds a TLS key. The default certificate comes from
 * CORDON_TLS_CERT / CORDON_TLS_KEY, else a development certificate (localhost, 127.0.0.1, ::1)
 * generated on first start into `<data>/tls/` (key 0600). Further hostnames get their own
 * certificates by SNI from CORDON_TLS_DIR: `<hostname>.crt` + `<hostname>.key` (a wildcard host as
 * `_.example.com.crt` covers `*.example.com`).
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface TlsSetup {
  cert: string;
  key: string;
  SNICallback(servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void;
  /** Where the default certificate came from (for the start-up log). */
  source: string;
}

async function devCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const certFile = join(dir, 'dev.crt');
  const keyFile = join(dir, 'dev.key');
  if (existsSync(certFile) && existsSync(keyFile)) return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notAfter = new Date();
  notAfter.setFullYear(notAfter.getFullYear() + 1);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notAfterDate: notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, pems.cert);
  return { cert: pems.cert, key: pems.private };
}

export async function loadTls(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<TlsSetup> {
  let base: { cert: string; key: string };
  let source: string;
  if (env.CORDON_TLS_CERT || env.CORDON_TLS_KEY) {
    if (!env.CORDON_TLS_CERT || !env.CORDON_TLS_KEY) throw new Error('set both CORDON_TLS_CERT and CORDON_TLS_KEY (PEM files), or neither');
    base = { cert: readFileSync(env.CORDON_TLS_CERT, 'utf8'), key: readFileSync(env.CORDON_TLS_KEY, 'utf8') };
    source = env.CORDON_TLS_CERT;
  } else {
    base = await devCertificate(join(dataDir, 'tls'));
    source = `development certificate ${join(dataDir, 'tls', 'dev.crt')}`;
  }
  const byHost = new Map<string, SecureContext>();
  const dir = env.CORDON_TLS_DIR;
  if (dir) {
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.crt')) continue;
      const host = f.slice(0, -4).replace(/^_\./, '*.').toLowerCase();
      const keyFile = join(dir, `${f.slice(0, -4)}.key`);
      if (!existsSync(keyFile)) throw new Error(`CORDON_TLS_DIR: ${f} has no matching ${f.slice(0, -4)}.key`);
      byHost.set(host, createSecureContext({ cert: readFileSync(join(dir, f), 'utf8'), key: readFileSync(keyFile, 'utf8') }));
    }
  }
  return {
    ...base,
    source,
    SNICallback(servername, cb) {
      const name = servername.toLowerCase();
      cb(null, byHost.get(name) ?? byHost.get(`*.${name.split('.').slice(1).join('.')}`));
    },
  };
}
