/**
 * node:crypto's calls to the host's node:crypto (services/sandbox/runtime/host-node-crypto.ts), for what
 * WebCrypto does not have: each is synchronous for the isolate, and a refusal or failure comes back as
 * the Node error the host gave (its code and message).
 */
import { subtle } from 'node-internal:crypto';
import type { NodeCryptoCall, NodeCryptoResult } from '../../services/sandbox/runtime/bootstrap/node-crypto-wire.ts';

type Answer<K extends string> = Extract<NodeCryptoResult, Record<K, unknown>>;

const ERRORS: Record<string, ErrorConstructor> = { TypeError, RangeError };

export function hostCall<K extends 'bytes' | 'ok' | 'text' | 'pair' | 'x509'>(call: NodeCryptoCall, want: K): Answer<K>[K] {
  const r = subtle.node(call);
  if ('error' in r) {
    const { name, message, code } = r.error;
    throw Object.assign(new (ERRORS[name] ?? Error)(message), code ? { code } : {});
  }
  if (!(want in r)) throw new Error(`node:crypto: the host answered ${call.op} without ${want}`);
  return (r as Answer<K>)[want];
}

/** A copy of the bytes as an ArrayBuffer of their own (what crosses to the host). */
export const buf = (b: Uint8Array): ArrayBuffer => b.slice().buffer as ArrayBuffer;
