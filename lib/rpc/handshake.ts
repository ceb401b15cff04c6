/**
 * Mutual authentication before any RPC: each side proves it holds the key of the link
 * (client role → server role, and for a link with a sandbox end, that sandbox's cordon) with an HMAC
 * over a transcript that includes fresh nonces from both sides, so a recorded handshake cannot be
 * replayed and neither side can be impersonated by a process that lacks the key. The cordon a
 * sandbox names in its hello selects the key its proof must be made with, so the name is
 * authenticated: it is the peer's identity, and the server may still refuse an identity it does not
 * serve (`admit`). On a link with a sandbox end the other end signs the transcript instead (see
 * keys.ts), since the sandbox holds the link key too. A peer that fails gets no RPC session and
 * learns nothing but "handshake failed".
 *
 * Both sides derive a session key (used by transports that must authenticate every frame, such as
 * NATS) from the link key, the transcript and an ephemeral X25519 exchange, so another holder of
 * the link key — another process of the same cordon watching the transcript go by — cannot compute it.
 */
import { createHmac, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { MAX_HANDSHAKE_MESSAGE, type Channel } from './channel.ts';
import { isRole, Keyring, linkCordon, type Role } from './keys.ts';

export interface PeerIdentity {
  role: Role;
  /** The peer's instance name; for a sandbox its cordon, proven by the per-cordon key it holds. */
  name: string;
}

export interface HandshakeResult {
  peer: PeerIdentity;
  sessionKey: Buffer;
}

/**
 * A handshake that failed, on either side: the host's own, not a CordonError. Its message (which key
 * is missing, what the peer claimed) is for the operator's log; the peer is told only "handshake
 * failed", and a caller whose call needed this link must not learn more than that it failed.
 */
export class HandshakeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandshakeError';
  }
}

/**
 * The version of the handshake and of what the link carries after it; a peer of another version is
 * refused with a reason, rather than closing the link later on a message it cannot read. Version 1 used
 * one key per unordered pair of roles. In version 2 a fast-path request's body was always inside its
 * frame. In version 3 a body of 32 KiB or more follows its frame as a message of its own, which a
 * version-2 sandbox would take for a broken protocol.
 */
export const HANDSHAKE_VERSION = 3;
const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function mac(key: Buffer, label: string, transcript: string): string {
  return createHmac('sha256', key).update(label).update('\0').update(transcript).digest('base64');
}

function equalMac(a: unknown, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a, 'base64');
  const y = Buffer.from(b, 'base64');
  return x.length === y.length && timingSafeEqual(x, y);
}

async function read(channel: Channel, deadline: Promise<never>): Promise<Record<string, unknown>> {
  const text = await Promise.race([channel.receive(), deadline]);
  if (text.length > MAX_HANDSHAKE_MESSAGE) throw new HandshakeError('handshake message too large');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HandshakeError('handshake message is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HandshakeError('handshake message is not an object');
  return value as Record<string, unknown>;
}

function timeout(ms: number): { promise: Promise<never>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandshakeError(`handshake timed out after ${ms} ms`)), ms);
  });
  promise.catch(() => {});
  return { promise, cancel: () => clearTimeout(timer) };
}

function nonce(): string {
  return randomBytes(32).toString('base64');
}

function validNonce(v: unknown): v is string {
  return typeof v === 'string' && Buffer.from(v, 'base64').length === 32;
}

function transcriptOf(hello: Record<string, unknown>, reply: Record<string, unknown>): string {
  return JSON.stringify([hello.role, hello.name, hello.to, hello.nonce, hello.dh, reply.role, reply.name, reply.nonce, reply.dh]);
}

/** An ephemeral X25519 key pair; its public half travels as base64url. */
export function ephemeral(): { privateKey: KeyObject; dh: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, dh: publicKey.export({ format: 'jwk' }).x! };
}

export function validDh(v: unknown): v is string {
  return typeof v === 'string' && /^[A-Za-z0-9_-]{43}$/.test(v);
}

/** A session's key: the X25519 secret of both ends' ephemeral keys, bound to `key` and the transcript. */
export function sessionKey(key: Buffer, transcript: string, own: KeyObject, peerDh: string): Buffer {
  const shared = diffieHellman({ privateKey: own, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerDh }, format: 'jwk' }) });
  return createHmac('sha256', key).update('session\0').update(transcript).update('\0').update(shared).digest();
}

/** How one end of the link client→server proves itself: a signature for a signing end, else the link key's HMAC. */
function prove(keyring: Keyring, key: Buffer, label: 'client' | 'server', client: Role, server: Role, transcript: string): string {
  if (!Keyring.signs(keyring.self, client, server)) return mac(key, label, transcript);
  return keyring.sign(Buffer.from(`${label}\0${transcript}`)).toString('base64');
}

function proven(keyring: Keyring, key: Buffer, label: 'client' | 'server', client: Role, server: Role, transcript: string, proof: unknown): boolean {
  const prover = label === 'client' ? client : server;
  if (!Keyring.signs(prover, client, server)) return equalMac(proof, mac(key, label, transcript));
  return typeof proof === 'string' && keyring.verify(prover, Buffer.from(`${label}\0${transcript}`), Buffer.from(proof, 'base64'));
}

/** Client side: authenticate to a server of role `expect` (named `expectName`: a sandbox's cordon). */
export async function clientHandshake(
  channel: Channel,
  opts: { keyring: Keyring; name: string; expect: Role; expectName?: string; timeoutMs?: number },
): Promise<HandshakeResult> {
  const self = opts.keyring.self;
  const cordon = linkCordon({ role: self, name: opts.name }, { role: opts.expect, name: opts.expectName });
  const key = opts.keyring.key(self, opts.expect, cordon);
  if (!key) {
    if (!opts.keyring.holds(self, opts.expect)) throw new HandshakeError(`role ${self} holds no key for ${opts.expect}: this link is not allowed`);
    if (cordon === undefined) throw new HandshakeError(`the key to reach a ${opts.expect} depends on its cordon: name it (expectName)`);
    throw new HandshakeError(`role ${self} holds no key for the link to ${opts.expect} of cordon ${JSON.stringify(cordon)}`);
  }
  const t = timeout(opts.timeoutMs ?? 5000);
  try {
    const own = ephemeral();
    const hello = { v: HANDSHAKE_VERSION, role: self, name: opts.name, to: opts.expect, nonce: nonce(), dh: own.dh };
    channel.send(JSON.stringify(hello));
    const reply = await read(channel, t.promise);
    if (typeof reply.error === 'string') throw new HandshakeError(`server refused the handshake: ${reply.error.slice(0, 200)}`);
    if (reply.role !== opts.expect || typeof reply.name !== 'string' || !NAME.test(reply.name) || !validNonce(reply.nonce) || !validDh(reply.dh)) {
      throw new HandshakeError('server sent a malformed handshake reply');
    }
    if (opts.expectName !== undefined && reply.name !== opts.expectName)
      throw new HandshakeError(`reached ${opts.expect} ${reply.name}, not ${opts.expectName}`);
    const transcript = transcriptOf(hello, reply);
    if (!proven(opts.keyring, key, 'server', self, opts.expect, transcript, reply.proof))
      throw new HandshakeError(`server failed to prove it is ${opts.expect}`);
    channel.authenticated(); // the server may follow its "ok" with large messages at once
    channel.send(JSON.stringify({ proof: prove(opts.keyring, key, 'client', self, opts.expect, transcript) }));
    const ok = await read(channel, t.promise);
    if (ok.ok !== true) throw new HandshakeError('server refused the handshake');
    return { peer: { role: opts.expect, name: reply.name }, sessionKey: sessionKey(key, transcript, own.privateKey, reply.dh) };
  } finally {
    t.cancel();
  }
}

/**
 * Server side: authenticate a client whose role must be in `accept`, and whose proven identity
 * `admit` (if given) accepts. Closes the channel on failure.
 */
export async function serverHandshake(
  channel: Channel,
  opts: { keyring: Keyring; name: string; accept: readonly Role[]; admit?: (peer: PeerIdentity) => boolean; timeoutMs?: number },
): Promise<HandshakeResult> {
  const t = timeout(opts.timeoutMs ?? 5000);
  const fail = (why: string): never => {
    try {
      channel.send(JSON.stringify({ error: 'handshake failed' }));
    } catch {
      // already closed
    }
    throw new HandshakeError(why);
  };
  try {
    const hello = await read(channel, t.promise);
    if (hello.v !== HANDSHAKE_VERSION)
      return fail(`client speaks handshake version ${JSON.stringify(hello.v)}, not ${HANDSHAKE_VERSION} (a process started by an older Cordon: restart it)`);
    if (!isRole(hello.role) || typeof hello.name !== 'string' || !NAME.test(hello.name) || !validNonce(hello.nonce) || !validDh(hello.dh)) {
      return fail('client sent a malformed hello');
    }
    if (hello.to !== opts.keyring.self) return fail(`client asked for ${String(hello.to)}, this is ${opts.keyring.self}`);
    const role = hello.role;
    if (!opts.accept.includes(role)) return fail(`role ${role} may not connect to ${opts.keyring.self}`);
    const peer: PeerIdentity = { role, name: hello.name };
    const key = opts.keyring.key(role, opts.keyring.self, linkCordon(peer, { role: opts.keyring.self, name: opts.name }));
    if (!key) return fail(`this ${opts.keyring.self} holds no key for ${role} ${hello.name}`);
    const self = opts.keyring.self;
    const own = ephemeral();
    const reply = { v: HANDSHAKE_VERSION, role: self, name: opts.name, nonce: nonce(), dh: own.dh };
    const transcript = transcriptOf(hello, reply);
    channel.send(JSON.stringify({ ...reply, proof: prove(opts.keyring, key, 'server', role, self, transcript) }));
    const auth = await read(channel, t.promise);
    if (!proven(opts.keyring, key, 'client', role, self, transcript, auth.proof)) return fail(`client failed to prove it is ${role} ${hello.name}`);
    // Checked only once proven, so only a holder of that identity's key learns whether it is served.
    if (opts.admit && !opts.admit(peer)) return fail(`${role} ${hello.name} is not one this ${opts.keyring.self} serves`);
    channel.authenticated();
    channel.send(JSON.stringify({ ok: true }));
    return { peer, sessionKey: sessionKey(key, transcript, own.privateKey, hello.dh as string) };
  } catch (e) {
    channel.close(e instanceof Error ? e : new Error(String(e)));
    throw e;
  } finally {
    t.cancel();
  }
}
