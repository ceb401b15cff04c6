/**
 * How a client of the RPC endpoint proves its token over NATS without sending it: other NATS users
 * may read the subjects a session runs on, so the token (a bearer credential) never crosses.
 *
 * A token stands for an Ed25519 key pair derived from it (HMAC-SHA256 of the token as the seed), and the
 * token store keeps the public half beside the token's hash. The supervisor opens with a nonce and an
 * ephemeral X25519 key; the client answers with its own ephemeral key, its public key and a signature
 * over the session id, both nonces' transcript and both ephemeral keys. The session key comes from the
 * X25519 exchange. So a proof seen on the bus is useless elsewhere (it names that session and its keys),
 * and nothing the supervisor stores — a copy of `admin.db` included — opens a session or reads one.
 */
import { createHash, createHmac, createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { ephemeral, sessionKey, validDh } from './handshake.ts';
import type { NatsChannel } from './nats.ts';

/** The NATS endpoint a cluster's clients connect to (subject `cordon.connect.<endpoint>`, lib/rpc/nats.ts). */
export const CLIENT_RPC_ENDPOINT = 'client-rpc';

/** The token as the token store keeps it for bearer checks (HTTP and WebSocket). */
export const tokenHash = (token: string): string => createHash('sha256').update(token).digest('hex');

// An Ed25519 private key as PKCS#8 DER is this prefix and the 32-byte seed (RFC 8410).
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;
const B64URL_64 = /^[A-Za-z0-9_-]{86}$/;
const SESSION_LABEL = Buffer.from('cordon client session v2');

/** The key pair a token stands for over NATS: its public half is what the token store keeps (base64url). */
export function tokenNatsKey(token: string): { privateKey: KeyObject; publicKey: string } {
  const seed = createHmac('sha256', token).update('cordon client nats key v2').digest();
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey).export({ format: 'jwk' }).x! };
}

/** The supervisor's opening message. */
export interface ProofHello {
  nonce: string;
  dh: string;
}

export function proofHello(): { hello: ProofHello; privateKey: KeyObject } {
  const { privateKey, dh } = ephemeral();
  return { hello: { nonce: randomBytes(32).toString('base64url'), dh }, privateKey };
}

const transcript = (sid: string, hello: ProofHello, clientDh: string, publicKey: string) =>
  JSON.stringify(['cordon client proof v2', sid, hello.nonce, hello.dh, clientDh, publicKey]);

/** The client's side: prove `token` on a fresh channel to the endpoint and key the channel (with the key it returns). */
export async function proveToken(channel: NatsChannel, token: string): Promise<Buffer> {
  const sid = channel.description.slice('nats:'.length);
  const hello = JSON.parse(await channel.receive()) as Partial<ProofHello>;
  if (typeof hello.nonce !== 'string' || !validDh(hello.dh)) throw new Error('Cordon answered the connection with something other than its hello');
  const own = ephemeral();
  const { privateKey, publicKey } = tokenNatsKey(token);
  const said = transcript(sid, hello as ProofHello, own.dh, publicKey);
  channel.send(`Proof ${own.dh} ${publicKey} ${sign(null, Buffer.from(said), privateKey).toString('base64url')}`);
  if ((await channel.receive().catch(() => '')) !== 'ok') throw new Error('Cordon refused the connection: the token is unknown or revoked');
  const key = sessionKey(SESSION_LABEL, said, own.privateKey, hello.dh!);
  channel.useSessionKey(key);
  channel.authenticated();
  return key;
}

/** The supervisor's side, first: the parts of a well-formed proof (the public key names the token). */
export function parseProof(message: string): { clientDh: string; publicKey: string; signature: string } | undefined {
  const [word, clientDh, publicKey, signature, ...rest] = message.split(' ');
  if (word !== 'Proof' || rest.length || !B64URL_32.test(clientDh ?? '') || !B64URL_32.test(publicKey ?? '') || !B64URL_64.test(signature ?? ''))
    return undefined;
  return { clientDh: clientDh!, publicKey: publicKey!, signature: signature! };
}

/** Then, for a live token with that public key: the session key if the signature holds. */
export function checkProof(
  sid: string,
  opened: { hello: ProofHello; privateKey: KeyObject },
  proof: { clientDh: string; publicKey: string; signature: string },
): Buffer | undefined {
  const said = transcript(sid, opened.hello, proof.clientDh, proof.publicKey);
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: proof.publicKey }, format: 'jwk' });
    if (!verify(null, Buffer.from(said), key, Buffer.from(proof.signature, 'base64url'))) return undefined;
    return sessionKey(SESSION_LABEL, said, opened.privateKey, proof.clientDh);
  } catch {
    return undefined; // not a point on the curve
  }
}
