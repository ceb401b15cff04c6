/** Starts a real nats-server on a free loopback port for tests, and stops it for good. */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

/** Why nats-server cannot run here, or undefined when it can. */
export function natsServerMissing(): string | undefined {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nats-server is not installed (apt-get install nats-server)';
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export interface NatsNode {
  url: string;
  pid: number;
  /** How many clients are connected to this node now (from its monitoring port), when it has one. */
  clients(): Promise<number>;
  /** The names of the clients connected to this node now (as they gave them), when it has a monitoring port. */
  clientNames(): Promise<string[]>;
  /** SIGKILL, as a crashed host: its clients' connections drop at once. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Spawns nats-server on `conf` and waits until `port` accepts. */
async function spawnNode(conf: string, port: number, monitorPort?: number): Promise<NatsNode> {
  const child = spawn('nats-server', ['-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  };
  const connz = async () => {
    if (!monitorPort) throw new Error('this nats-server has no monitoring port');
    return (await (await fetch(`http://127.0.0.1:${monitorPort}/connz`)).json()) as { num_connections: number; connections?: { name?: string }[] };
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: child.pid!,
    clients: async () => (await connz()).num_connections,
    clientNames: async () => ((await connz()).connections ?? []).map((c) => c.name ?? ''),
    kill: () => end('SIGKILL'),
    stop: () => end('SIGTERM'),
  };
}

/** Client credentials the server requires (an `authorization` block), or none. */
export interface NatsAuth {
  user: string;
  pass: string;
}

/** TLS on the client port: the server's certificate and key, and the CA it verifies clients with (`verify`). */
export interface NatsServerTls {
  cert: string;
  key: string;
  ca: string;
  verify?: boolean;
}

function tlsBlock(tls?: NatsServerTls): string {
  if (!tls) return '';
  return `tls { cert_file: ${JSON.stringify(tls.cert)}, key_file: ${JSON.stringify(tls.key)}, ca_file: ${JSON.stringify(tls.ca)}, verify: ${tls.verify === true} }\n`;
}

function authBlock(auth?: NatsAuth): string {
  return auth ? `authorization { user: ${JSON.stringify(auth.user)}, password: ${JSON.stringify(auth.pass)} }\n` : '';
}

export async function startNatsServer(opts: { maxPayload?: number; auth?: NatsAuth } = {}): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cordon-nats-'));
  const conf = join(dir, 'nats.conf');
  writeFileSync(conf, `listen: 127.0.0.1:${port}\n${opts.maxPayload ? `max_payload: ${opts.maxPayload}\n` : ''}${authBlock(opts.auth)}`);
  const node = await spawnNode(conf, port);
  return {
    url: node.url,
    async stop() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A cluster of `size` nats-servers on loopback, each routing to all the others (full mesh of routes).
 * `url` lists every node as comma-separated seeds, as CORDON_NATS_URL takes them.
 */
export async function startNatsCluster(
  opts: { size?: number; auth?: NatsAuth; tls?: NatsServerTls } = {},
): Promise<{ url: string; nodes: NatsNode[]; stop(): Promise<void> }> {
  const size = opts.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-nats-cluster-'));
  const ports: { client: number; cluster: number; monitor: number }[] = [];
  for (let i = 0; i < size; i++) ports.push({ client: await freePort(), cluster: await freePort(), monitor: await freePort() });
  const nodes: NatsNode[] = [];
  try {
    for (const [i, p] of ports.entries()) {
      const routes = ports.filter((_, j) => j !== i).map((o) => `nats-route://127.0.0.1:${o.cluster}`);
      const conf = join(dir, `node-${i}.conf`);
      writeFileSync(
        conf,
        `server_name: n${i}\nlisten: 127.0.0.1:${p.client}\nhttp: 127.0.0.1:${p.monitor}\n${authBlock(opts.auth)}${tlsBlock(opts.tls)}` +
          `cluster { name: cordon-test, listen: 127.0.0.1:${p.cluster}, routes: [${routes.map((r) => JSON.stringify(r)).join(', ')}] }\n`,
      );
      nodes.push(await spawnNode(conf, p.client, p.monitor));
    }
  } catch (e) {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: nodes.map((n) => (opts.tls ? n.url.replace('nats://', 'tls://') : n.url)).join(','),
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A CA, a server certificate it signed for 127.0.0.1 and localhost, and a client certificate it
 * signed, as PEM files in `dir`; plus a second CA that signed nothing here, to refuse.
 */
export async function makeNatsCerts(dir: string): Promise<{ ca: string; otherCa: string; cert: string; key: string; clientCert: string; clientKey: string }> {
  const { generate } = await import('selfsigned');
  const caExtensions = [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ];
  const opts = { algorithm: 'sha256', keyType: 'ec', curve: 'P-256' } as const;
  const ca = await generate([{ name: 'commonName', value: 'cordon test CA' }], { ...opts, extensions: caExtensions } as never);
  const other = await generate([{ name: 'commonName', value: 'another CA' }], { ...opts, extensions: caExtensions } as never);
  const server = await generate([{ name: 'commonName', value: 'localhost' }], {
    ...opts,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  } as never);
  const client = await generate([{ name: 'commonName', value: 'cordon service' }], {
    ...opts,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  } as never);
  const files = {
    ca: [ca.cert, 'ca.pem'],
    otherCa: [other.cert, 'other-ca.pem'],
    cert: [server.cert, 'server.pem'],
    key: [server.private, 'server.key'],
    clientCert: [client.cert, 'client.pem'],
    clientKey: [client.private, 'client.key'],
  } as const;
  const out = {} as Record<keyof typeof files, string>;
  for (const [k, [pem, name]] of Object.entries(files)) {
    writeFileSync(join(dir, name), pem, { mode: 0o600 });
    out[k as keyof typeof files] = join(dir, name);
  }
  return out;
}
