/**
 * Workers' `crypto.DigestStream`: a WritableStream whose `digest` promise gives the hash of everything
 * written once it is closed. The hash is computed as chunks arrive, in the isolate (@noble/hashes: the CPU
 * is the worker's), so a stream of any length is hashed without being held. The hashes are a lazy unit
 * (units.ts), loaded by an isolate's first DigestStream, as are the streams it extends (streams.ts): the
 * class is a constructor whose prototype is joined to WritableStream's when its first instance is made.
 */
import { unit } from './units.ts';
import type { LazyUnits } from '../abi.ts';
import type { WritableStream } from 'web-streams-polyfill';
import { streams } from './streams.ts';
import { bytesOf } from './byte-streams.ts';
import { DOMException } from './encoding.ts';

type Hash = LazyUnits['hashes']['sha256'];
const HASH_NAMES = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512', MD5: 'md5' } as const;
const construct = Reflect.construct;
const setPrototypeOf = Object.setPrototypeOf;

type Chunk = ArrayBuffer | ArrayBufferView | string;
export interface DigestStream extends WritableStream<Chunk> {
  readonly digest: Promise<ArrayBuffer>;
}
type DigestStreamClass = new (algorithm: string | { name?: unknown }) => DigestStream;

/** The WritableStream subclass that makes each DigestStream, defined on the first one (after the streams are loaded). */
let made: DigestStreamClass | undefined;
function impl(): DigestStreamClass {
  if (made) return made;
  const { WritableStream } = streams();
  setPrototypeOf(DigestStream, WritableStream);
  setPrototypeOf(DigestStream.prototype, WritableStream.prototype);
  made = class extends WritableStream<Chunk> {
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
  };
  return made;
}

/** `new DigestStream(algorithm)`: an instance of `new.target` (a subclass's too), made by the WritableStream subclass above. */
export const DigestStream = function DigestStream(this: unknown, algorithm: string | { name?: unknown }): DigestStream {
  if (new.target === undefined) throw new TypeError("Class constructor DigestStream cannot be invoked without 'new'");
  return construct(impl(), [algorithm], new.target) as DigestStream;
} as unknown as DigestStreamClass;
// As a class's: its prototype stays the one its instances are made with.
Object.defineProperty(DigestStream, 'prototype', { writable: false });
