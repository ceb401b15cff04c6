/**
 * `connect('nats://…', { token })` for a service inside a cluster (Node only; loaded by connect() for
 * nats:// URLs, so a browser never loads it). The session runs on subjects of its own through the
 * cluster's NATS, to the supervisor's client endpoint: the token is proven, never sent
 * (lib/rpc/client-proof.ts), and every frame after that is encrypted. It holds no mesh key.
 */
import { connect as natsConnect, type ConnectionOptions } from '@nats-io/transport-node';
import { RpcSession, type RpcStub, type RpcTransport } from 'capnweb';
import { connectNats, MESH_SESSION_TIMING } from '../lib/rpc/nats.ts';
import { CLIENT_RPC_ENDPOINT, proveToken } from '../lib/rpc/client-proof.ts';
import type { CordonApi } from '../schemas/client.ts';

/** The endpoint's message limit (4 MiB, as over the WebSocket). */
const MAX_MESSAGE = 4 * 1024 * 1024;

export async function connectOverNats(url: string, token: string, nats: Partial<ConnectionOptions> = {}): Promise<RpcStub<CordonApi>> {
  const nc = await natsConnect({ servers: url.replace(/^nats:\/\//, ''), ...nats });
  try {
    // The supervisor drops a session silent for its mesh time-out (3 s): heartbeat at the mesh's pace.
    const channel = await connectNats(nc, CLIENT_RPC_ENDPOINT, MAX_MESSAGE, MESH_SESSION_TIMING);
    await proveToken(channel, token);
    channel.onClose(() => void nc.close());
    const transport: RpcTransport = {
      send: (message) => channel.send(message),
      receive: () => channel.receive(),
      abort: (reason) => channel.close(reason instanceof Error ? reason : new Error(String(reason))),
    };
    return new RpcSession<CordonApi>(transport).getRemoteMain();
  } catch (e) {
    await nc.close();
    throw e;
  }
}
