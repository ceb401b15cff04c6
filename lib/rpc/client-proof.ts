/**
 * How a client of the RPC endpoint proves its token over NATS without sending it: other NATS users
 * may read the subjects a session runs on, so the token (a bearer credential) never crosses. The
 * supervisor opens with a random nonce; the client answers an HMAC of the session id and the nonce,
 * keyed with the token's SHA-256 (what the token store keeps), and both sides then key the session's
 * frames with a second HMAC of the same: a frame injected or replayed by another NATS user fails.
 * A copy of the token store's hashes is therefore as good as the tokens here (not over HTTP).
 */
import { createHash, createHmac } from 'node:crypto';

/** The token as the token store keeps it. */
export const tokenHash = (token: string): string => createHash('sha256').update(token).digest('hex');

export function tokenProof(hash: string, sid: string, nonce: string): string {
  return createHmac('sha256', hash).update(`cordon client proof\0${sid}\0${nonce}`).digest('base64');
}

export function clientSessionKey(hash: string, sid: string, nonce: string): Buffer {
  return createHmac('sha256', hash).update(`cordon client session\0${sid}\0${nonce}`).digest();
}

/** The NATS endpoint a cluster's clients connect to (subject `cordon.connect.<endpoint>`, lib/rpc/nats.ts). */
export const CLIENT_RPC_ENDPOINT = 'client-rpc';
