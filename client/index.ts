/**
 * `cordon/client`: call Cordon from a service. Opens capnweb over a WebSocket to the RPC endpoint on
 * the admin port and returns the main capability, attenuated to the token's scopes and tenant.
 *
 *   const cordon = await connect('ws://127.0.0.1:8081/rpc', { token });   // or 'nats://nats-host:4222' in a cluster
 *   const instance = await cordon.workflows('signup').create({ params: { user: 'ada' } });
 *   using watch = await instance.watch((event) => console.log(event));
 *
 * Runs wherever capnweb and a standard WebSocket do: browsers, Node ≥ 22 (a global WebSocket), Node 20
 * with `--experimental-websocket`, or any runtime given a constructor in `options.WebSocket`.
 * The token goes in the first message, not the URL (URLs end up in logs).
 */
import { newWebSocketRpcSession, type RpcStub } from 'capnweb';
import type { CordonApi } from '../schemas/client.ts';

export type * from '../schemas/client.ts';

export interface ConnectOptions {
  token: string;
  /** For nats:// URLs: options of the NATS connection (user and pass, an authenticator, …). */
  nats?: Record<string, unknown>;
  /** A WebSocket constructor where the runtime has no global one. */
  WebSocket?: new (
    url: string,
  ) => WebSocket;
}

/** The main capability; dispose it (`cordon[Symbol.dispose]()`) to close the connection. */
export type Cordon = RpcStub<CordonApi>;

export async function connect(url: string, options: ConnectOptions): Promise<Cordon> {
  const cordon = url.startsWith('nats://')
    ? await (await import('./nats.ts')).connectOverNats(url, options.token, options.nats)
    : await overWebSocket(url, options);
  try {
    // Proves the token: a refused one closes the connection with the reason.
    await cordon.whoami();
  } catch (e) {
    cordon[Symbol.dispose]();
    throw new Error(`Cordon refused the connection: ${(e as Error).message}`);
  }
  return cordon;
}

async function overWebSocket(url: string, options: ConnectOptions): Promise<Cordon> {
  const Ws = options.WebSocket ?? globalThis.WebSocket;
  if (!Ws) throw new Error('no WebSocket in this runtime: pass options.WebSocket (e.g. the `ws` package) or use Node ≥ 22');
  const ws = new Ws(url);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error(`could not open a WebSocket to ${url}`)), { once: true });
  });
  ws.send(`Bearer ${options.token}`);
  return newWebSocketRpcSession<CordonApi>(ws);
}
