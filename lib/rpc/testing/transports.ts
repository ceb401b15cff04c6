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

export const transports: TestTransport[] = [unixTransport];
