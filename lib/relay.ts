/**
 * Network for a sandbox that has none. Outside, the launcher serves a Unix socket per destination
 * (the NATS servers; an OTLP/HTTP trace collector) and pipes each connection to it; inside, the
 * sandbox — in its own network namespace, where only loopback exists — listens on a loopback port
 * per relay and pipes each connection to that socket, then dials the loopback port. The sandbox
 * reaches those destinations and nothing else. Byte pipes, not proxies: whatever runs inside them
 * (the mesh's own authentication over NATS) is end to end.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { natsSeeds } from './config.ts';

export interface Destination {
  host: string;
  port: number;
}

/** The environment variables that hand a sandbox its relays' sockets. */
export const RELAY_ENV = { nats: 'CORDON_NATS_RELAY', otlp: 'CORDON_OTLP_RELAY' } as const;
const OTLP_ENDPOINTS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'];

/** The seeds of CORDON_NATS_URL as relay destinations (lib/config.ts checks and parses them). */
export function natsServers(url: string): Destination[] {
  return natsSeeds(url).map(({ host, port }) => ({ host, port }));
}

/** Where the OTLP/HTTP exporter would send traces, if it is configured with a plain-HTTP endpoint. */
export function otlpDestination(env: NodeJS.ProcessEnv): Destination | undefined {
  const raw = OTLP_ENDPOINTS.map((k) => env[k]).find(Boolean);
  if (!raw) return undefined;
  const u = new URL(raw);
  // An https collector would check its name against 127.0.0.1; such a sandbox exports nothing.
  if (u.protocol !== 'http:') return undefined;
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

function pipeBoth(a: Socket, b: Socket): void {
  const end = () => (a.destroy(), b.destroy());
  a.on('error', end).on('close', end);
  b.on('error', end).on('close', end);
  a.pipe(b);
  b.pipe(a);
}

/** `client` piped to the first of `dials` that connects (it is not read until then); closed if none does. */
function pipeToFirst(client: Socket, dials: (() => Socket)[]): void {
  client.pause();
  client.on('error', () => {});
  const attempt = (i: number) => {
    if (i >= dials.length) return client.destroy();
    const out = dials[i]!();
    out.once('error', () => attempt(i + 1));
    out.once('connect', () => {
      out.removeAllListeners('error');
      pipeBoth(client, out);
      client.resume();
    });
  };
  attempt(0);
}

/** Connections one relay carries at once: a sandbox needs one or two; a hostile one may not open thousands. */
export const MAX_RELAYED = 64;

/** The launcher's end: a Unix socket at `socketPath` relayed to the first destination that answers. */
export async function relayOutside(socketPath: string, destinations: Destination[]): Promise<Server> {
  rmSync(socketPath, { force: true });
  const dials = destinations.map((d) => () => connect(d.port, d.host));
  const server = createServer((inside) => pipeToFirst(inside, dials));
  server.maxConnections = MAX_RELAYED; // beyond, Node closes new connections at once
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, () => resolve()));
  return server;
}

/** A loopback port (0: any free one) relayed to `socketPath`: a sandbox's end of a relay, or `cordon debug`'s. */
export async function relayInside(socketPath: string, port = 0): Promise<number> {
  const server = createServer((client) => pipeToFirst(client, [() => connect(socketPath)]));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  server.unref();
  return (server.address() as { port: number }).port;
}

/**
 * Inside a sandbox: opens the relays the launcher handed it and points NATS and the trace exporter
 * at them. Returns the NATS URL to dial instead, and whether any relay is in use (then the seccomp
 * filter must allow TCP sockets, which in this namespace can only reach these loopback ports).
 */
export async function openRelays(env: NodeJS.ProcessEnv): Promise<{ natsUrl?: string; tcp: boolean }> {
  let natsUrl: string | undefined;
  if (env[RELAY_ENV.nats]) natsUrl = `nats://127.0.0.1:${await relayInside(env[RELAY_ENV.nats]!)}`;
  if (env[RELAY_ENV.otlp]) {
    const port = await relayInside(env[RELAY_ENV.otlp]!);
    for (const key of OTLP_ENDPOINTS) {
      if (!env[key]) continue;
      const u = new URL(env[key]!);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      env[key] = u.toString().replace(/\/$/, '');
    }
  }
  return { natsUrl, tcp: Boolean(env[RELAY_ENV.nats] || env[RELAY_ENV.otlp]) };
}
