/**
 * Mutual authentication before any RPC: each side proves it holds the pair key for
 * (client role, server role) with an HMAC over a transcript that includes fresh nonces from both
 * sides, so a recorded handshake cannot be replayed and neither side can be impersonated by a
 * process that lacks the key. A peer that fails gets no RPC session and learns nothing but
 * "handshake failed". Both sides derive a session key from the transcript (used by transports that
 * must authenticate every frame, such as NATS).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Channel } from './channel.ts';
import { isRole, type Keyring, type Role } from './keys.ts';

export interface PeerIdentity {
  role: Role;
  /** Instance name chosen by the peer (e.g. the cordon a sandbox serves); informative, authenticated. */
  name: string;
}

export interface HandshakeResult {
  peer: PeerIdentity;
  sessionKey: Buffer;
}

export class HandshakeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandshakeError';
  }
}

const MAX_HANDSHAKE_MESSAGE = 1024;
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
  return JSON.stringify([hello.role, hello.name, hello.to, hello.nonce, reply.role, reply.name, reply.nonce]);
}

/** Client side: authenticate to a server of role `expect`. */
export async function clientHandshake(
  channel: Channel,
  opts: { keyring: Keyring; name: string; expect: Role; timeoutMs?: number },
): Promise<HandshakeResult> {
  const key = opts.keyring.keyFor(opts.expect);
  if (!key) throw new HandshakeError(`role ${opts.keyring.self} holds no key for ${opts.expect}: this link is not allowed`);
  const t = timeout(opts.timeoutMs ?? 5000);
  try {
    const hello = { v: 1, role: opts.keyring.self, name: opts.name, to: opts.expect, nonce: nonce() };
    channel.send(JSON.stringify(hello));
    const reply = await read(channel, t.promise);
    if (typeof reply.error === 'string') throw new HandshakeError(`server refused the handshake: ${reply.error.slice(0, 200)}`);
    if (reply.role !== opts.expect || typeof reply.name !== 'string' || !NAME.test(reply.name) || !validNonce(reply.nonce)) {
      throw new HandshakeError('server sent a malformed handshake reply');
    }
    const transcript = transcriptOf(hello, reply);
    if (!equalMac(reply.proof, mac(key, 'server', transcript))) throw new HandshakeError(`server failed to prove it is ${opts.expect}`);
    channel.send(JSON.stringify({ proof: mac(key, 'client', transcript) }));
    const ok = await read(channel, t.promise);
    if (ok.ok !== true) throw new HandshakeError('server refused the handshake');
    return { peer: { role: opts.expect, name: reply.name }, sessionKey: Buffer.from(mac(key, 'session', transcript), 'base64') };
  } finally {
    t.cancel();
  }
}

/** Server side: authenticate a client whose role must be in `accept`. Closes the channel on failure. */
export async function serverHandshake(
  channel: Channel,
  opts: { keyring: Keyring; name: string; accept: readonly Role[]; timeoutMs?: number },
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
    if (hello.v !== 1 || !isRole(hello.role) || typeof hello.name !== 'string' || !NAME.test(hello.name) || !validNonce(hello.nonce)) {
      return fail('client sent a malformed hello');
    }
    if (hello.to !== opts.keyring.self) return fail(`client asked for ${String(hello.to)}, this is ${opts.keyring.self}`);
    const role = hello.role;
    const key = opts.accept.includes(role) ? opts.keyring.keyFor(role) : undefined;
    if (!key) return fail(`role ${role} may not connect to ${opts.keyring.self}`);
    const reply = { v: 1, role: opts.keyring.self, name: opts.name, nonce: nonce() };
    const transcript = transcriptOf(hello, reply);
    channel.send(JSON.stringify({ ...reply, proof: mac(key, 'server', transcript) }));
    const auth = await read(channel, t.promise);
    if (!equalMac(auth.proof, mac(key, 'client', transcript))) return fail(`client failed to prove it is ${role}`);
    channel.send(JSON.stringify({ ok: true }));
    return { peer: { role, name: hello.name }, sessionKey: Buffer.from(mac(key, 'session', transcript), 'base64') };
  } catch (e) {
    channel.close(e instanceof Error ? e : new Error(String(e)));
    throw e;
  } finally {
    t.cancel();
  }
}
