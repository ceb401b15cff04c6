/**
 * Transports the RPC test-suite runs over. Each offers a way to serve and to connect by a
 * transport-specific address; tests are written once and run over every entry.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RpcCompatible } from 'capnweb';
import { connectUnixSession, serveUnix, type AcceptOptions, type ConnectOptions, type MeshSession } from '../index.ts';
import { connectUnix } from '../unix.ts';
import type { Channel } from '../channel.ts';
import { connect as natsConnect, type NatsConnection } from '@nats-io/transport-node';
import { connectNats, connectNatsSession, serveNats } from '../nats.ts';
import { natsServerMissing, startNatsServer } from './nats-server.ts';

export interface TestTransport {
  name: string;
  /** Why this transport cannot run here (e.g. no nats-server), or undefined when it can. */
  unavailable?: string;
  setup(): Promise<TestEndpoint>;
}

export interface TestEndpoint {
  serve(opts: AcceptOptions): Promise<{ close(): Promise<void> }>;
  connect<R extends RpcCompatible<R>>(opts: ConnectOptions): Promise<MeshSession<R>>;
  /** A raw, unauthenticated channel to the server, for attack tests. */
  rawChannel(maxMessage?: number): Promise<Channel>;
  teardown(): Promise<void>;
}

export const unixTransport: TestTransport = {
  name: 'unix',
  async setup() {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-rpc-'));
    const path = join(dir, 'server.sock');
    return {
      serve: (opts) => serveUnix(path, opts),
      connect: (opts) => connectUnixSession(path, opts),
      rawChannel: (max = 1 << 20) => connectUnix(path, max),
      teardown: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
};

/** Fast heartbeats so dead-peer tests finish quickly. */
const NATS_TIMING = { heartbeatMs: 100, sessionTimeoutMs: 600 };

export const natsTransport: TestTransport = {
  name: 'nats',
  unavailable: natsServerMissing(),
  async setup() {
    const server = await startNatsServer();
    const conns: NatsConnection[] = [];
    const conn = async () => {
      const nc = await natsConnect({ servers: server.url });
      conns.push(nc);
      return nc;
    };
    const serverNc = await conn();
    const clientNc = await conn();
    return {
      serve: (opts) => serveNats(serverNc, 'rpc-test', { ...NATS_TIMING, ...opts }),
      connect: (opts) => connectNatsSession(clientNc, 'rpc-test', { ...NATS_TIMING, ...opts }),
      rawChannel: (max = 1 << 20) => connectNats(clientNc, 'rpc-test', max, NATS_TIMING),
      teardown: async () => {
        for (const nc of conns) await nc.close();
        await server.stop();
      },
    };
  },
};

export const transports: TestTransport[] = [unixTransport, natsTransport];
