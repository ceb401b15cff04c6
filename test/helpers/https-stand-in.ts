/**
 * A stand-in for a public HTTPS service (api.cloudflare.com, cloudflare-dns.com) on loopback, port 443 as
 * the real one's URL says: a certificate for its name that egress is told to trust (NODE_EXTRA_CA_CERTS), and
 * a test DNS server naming it the stand-in's loopback address (CORDON_EGRESS_DNS). A worker reaches it only
 * if its deployer declares the origin (`--origin https://<name>`), an operator's grant as for any private
 * origin. Each suite takes its own loopback address, so suites running side by side do not share port 443.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as plain } from 'node:net';
import type { RequestListener } from 'node:http';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import { type Answers, startDnsServer } from '../../services/egress/testing/dns-server.ts';

/** Whether this process may listen on <address>:443 (root, or net.ipv4.ip_unprivileged_port_start lowered). */
export function mayListen443(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = plain();
    s.once('error', () => resolve(false));
    s.listen(443, address, () => s.close(() => resolve(true)));
  });
}

export interface HttpsStandIn {
  /** For the mesh: its DNS server and the stand-in's certificate. */
  env: NodeJS.ProcessEnv;
  /** Names the DNS server was asked for. */
  queries: string[];
  stop(): Promise<void>;
}

/** `name` served by `handler` at `address`:443; `more` are further names the DNS server answers. */
export async function startHttpsStandIn(name: string, address: string, handler: RequestListener, more: Answers = {}): Promise<HttpsStandIn> {
  const certDir = mkdtempSync(join(tmpdir(), 'cordon-stand-in-ca-'));
  const pems = await selfsigned.generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: name }] },
    ],
  });
  writeFileSync(join(certDir, 'ca.crt'), pems.cert);
  const server = createServer({ key: pems.private, cert: pems.cert }, handler);
  await new Promise<void>((r) => server.listen(443, address, r));
  const dns = await startDnsServer({ ...more, [name]: [address] });
  return {
    env: { CORDON_EGRESS_DNS: dns.server, NODE_EXTRA_CA_CERTS: join(certDir, 'ca.crt') },
    queries: dns.queries,
    async stop() {
      await dns.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(certDir, { recursive: true, force: true });
    },
  };
}
