/**
 * Capability RPC between Cordon's services: capnweb sessions over authenticated channels.
 *
 * - `accept` / `connect` run the handshake on a Channel from any transport, then start a session.
 *   A peer that fails the handshake never reaches capnweb.
 * - `serveUnix` / `connectUnixSession`: the default transport. (`nats.ts`: the cluster transport.)
 * - `Membrane` makes granted capabilities revocable; `validate` checks arguments from less trusted peers.
 *
 * Methods of an exported RpcTarget are callable by the peer: keep internals in `#private` members.
 */
import type { RpcCompatible, RpcTarget } from 'capnweb';
import type { Channel } from './channel.ts';
import { clientHandshake, serverHandshake, type PeerIdentity } from './handshake.ts';
import type { Keyring, Role } from './keys.ts';
import type { Quotas } from './quotas.ts';
import { MeshSession } from './session.ts';
import { connectUnix, listenUnix, type UnixListener } from './unix.ts';
import { DEFAULT_QUOTAS } from './quotas.ts';

export { MeshSession } from './session.ts';
export { HandshakeError, type PeerIdentity } from './handshake.ts';
export { checkHanded, CORDON_NAME, handedKeyring, isRole, Keyring, KEYRING_ENV, KEYRING_FILE_ENV, loadKeyring, loadMeshSecret, type Role } from './keys.ts';
export { DEFAULT_QUOTAS, QuotaExceededError, type Quotas } from './quotas.ts';
export { FrameTooLargeError } from './frames.ts';
export type { Channel } from './channel.ts';

/** A channel that can authenticate every later frame with the handshake's session key (NATS). */
export interface KeyedChannel extends Channel {
  useSessionKey(key: Buffer): void;
}

function isKeyed(channel: Channel): channel is KeyedChannel {
  return typeof (channel as Partial<KeyedChannel>).useSessionKey === 'function';
}

export interface AcceptOptions {
  keyring: Keyring;
  name: string;
  accept: readonly Role[];
  /** Whether to serve a peer whose identity the handshake proved (e.g. the supervisor: a cordon it runs). */
  admit?(peer: PeerIdentity): boolean;
  quotas?: Partial<Quotas>;
  /** How long a client may take over the handshake (default 5 s). */
  timeoutMs?: number;
  /** The object the peer gets as its main capability, chosen after it proved who it is. */
  mainFor(peer: PeerIdentity): RpcTarget;
  onSession?(session: MeshSession<any>): void;
  onError?(error: Error): void;
}

/** Server side: authenticate the channel's peer, then serve it. Never throws: failures go to `onError`. */
export async function accept(channel: Channel, opts: AcceptOptions): Promise<MeshSession<any> | undefined> {
  try {
    const { peer, sessionKey } = await serverHandshake(channel, opts);
    if (isKeyed(channel)) channel.useSessionKey(sessionKey);
    const session = new MeshSession<any>(channel, peer, opts.mainFor(peer), opts.quotas);
    opts.onSession?.(session);
    return session;
  } catch (e) {
    channel.close(e as Error);
    opts.onError?.(e as Error);
    return undefined;
  }
}

export interface ConnectOptions {
  keyring: Keyring;
  name: string;
  expect: Role;
  /** The server's instance name, required where it selects the key: the cordon of a sandbox. */
  expectName?: string;
  quotas?: Partial<Quotas>;
  /** What the server may call back on (optional). */
  local?: RpcTarget;
}

/** Client side: authenticate the server, then open a session whose `remote` is its main capability. */
export async function connect<Remote extends RpcCompatible<Remote>>(channel: Channel, opts: ConnectOptions): Promise<MeshSession<Remote>> {
  try {
    const { peer, sessionKey } = await clientHandshake(channel, opts);
    if (isKeyed(channel)) channel.useSessionKey(sessionKey);
    return new MeshSession<Remote>(channel, peer, opts.local, opts.quotas);
  } catch (e) {
    channel.close(e as Error);
    throw e;
  }
}

export function serveUnix(path: string, opts: AcceptOptions): Promise<UnixListener> {
  const max = opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage;
  return listenUnix(path, max, (channel) => void accept(channel, opts));
}

export async function connectUnixSession<Remote extends RpcCompatible<Remote>>(path: string, opts: ConnectOptions): Promise<MeshSession<Remote>> {
  const channel = await connectUnix(path, opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage);
  return connect<Remote>(channel, opts);
}
export { Membrane, CapabilityRevokedError } from './membrane.ts';
