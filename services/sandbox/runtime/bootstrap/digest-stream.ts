/**
 * Workers' `crypto.DigestStream`: a WritableStream whose `digest` promise gives the hash of everything
 * written once it is closed. The hash is computed as chunks arrive, in the isolate (@noble/hashes: the CPU
 * is the worker's), so a stream of any length is hashed without being held. The hashes are a lazy unit
 * (units.ts), loaded by an isolate's first DigestStream.
 */
import { unit } from './units.ts';
import type { LazyUnits } from '../abi.ts';
import { WritableStream } from 'web-streams-polyfill';
import { bytesOf } from './byte-streams.ts';
import { DOMException } from './encoding.ts';

type Hash = LazyUnits['hashes']['sha256'];
const HASH_NAMES = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512', MD5: 'md5' } as const;

export class DigestStream extends WritableStream<ArrayBuffer | ArrayBufferView | string> {
  readonly digest: Promise<ArrayBuffer>;
  constructor(algorithm: string | { name?: unknown }) {
    const name = String(typeof algorithm === 'object' && algorithm !== null ? algorithm.name : algorithm).toUpperCase();
    const hash: Hash | undefined = Object.hasOwn(HASH_NAMES, name) ? unit('hashes')[HASH_NAMES[name as keyof typeof HASH_NAMES]] : undefined;
    if (!hash) throw new DOMException('Unrecognized or unimplemented digest algorithm requested.', 'NotSupportedError');
    const hasher = hash.create();
    let settle!: { resolve: (b: ArrayBuffer) => void; reject: (e: unknown) => void };
    const digest = new Promise<ArrayBuffer>((resolve, reject) => (settle = { resolve, reject }));
    super({
      write(chunk) {
        hasher.update(bytesOf(chunk, 'DigestStream'));
      },
      close() {
        const d = hasher.digest();
        settle.resolve(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength) as ArrayBuffer);
      },
      abort(reason) {
        settle.reject(reason);
      },
    });
    // An unobserved rejection (the stream aborted, no one awaiting the digest) is not an error of the worker's.
    digest.catch(() => {});
    this.digest = digest;
  }
}
