/** The NATS transport for the mesh (`CORDON_NATS_URL`): one NATS connection per process, sessions over subjects. */
import { connect } from '@nats-io/transport-node';
import { connectNats, listenNats } from './rpc/nats.ts';
import type { Transport } from './mesh.ts';

/** Inside one mesh a dead peer (a crashed sandbox) must be noticed within seconds. */
const SESSION_TIMING = { heartbeatMs: 1000, sessionTimeoutMs: 3000 };

export async function natsTransport(url: string): Promise<Transport> {
  let nc;
  try {
    // Keep reconnecting forever: NATS restarting must not take the service down with it.
    nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
  } catch (e) {
    throw new Error(`cannot connect to NATS at ${url}: ${(e as Error).message}`);
  }
  return {
    listen: (endpoint, max, onChannel) => listenNats(nc, endpoint, max, onChannel, SESSION_TIMING),
    dial: (endpoint, max) => connectNats(nc, endpoint, max, SESSION_TIMING),
    close: () => nc.drain(),
  };
}
