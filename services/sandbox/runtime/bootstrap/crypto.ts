/**
 * The `crypto` global: getRandomValues and randomUUID from the host's random bytes, crypto.subtle
 * (subtle.ts) over the host's crypto reference (host-crypto.ts), and Workers' DigestStream (in the isolate).
 */
import type { HostCallbacks, HostReferences, IsolateRef } from '../abi.ts';
import { DOMException } from './encoding.ts';
import { type CryptoHostCall, makeSubtle, type SyncSubtle } from './subtle.ts';
import type { NodeCryptoCall } from './node-crypto-wire.ts';
import type { WireCall } from './subtle-wire.ts';
import { DigestStream } from './digest-stream.ts';

// Called after tenant code has run: captured before it can patch them.
const apply = Reflect.apply;
const U8 = Uint8Array;
const taSet = Uint8Array.prototype.set;

/**
 * `cryptoRef` is called with applySyncPromise: it blocks this isolate (only this one) until the host's
 * job is done, so the result is never an event that could arrive after its request ended, and
 * crypto.subtle works in global scope as in Workers. Returns the synchronous twin of crypto.subtle that
 * node:crypto's synchronous API is built on (the `node-internal:crypto` module, modules.ts).
 */
export function installCrypto(g: Record<string, unknown>, random: HostCallbacks['random'], cryptoRef: IsolateRef<HostReferences['crypto']>): SyncSubtle {
  function getRandomValues<T extends ArrayBufferView | null>(array: T): T {
    if (!ArrayBuffer.isView(array) || array instanceof Float32Array || array instanceof Float64Array || array instanceof DataView) {
      throw new TypeError('getRandomValues needs an integer typed array');
    }
    if (array.byteLength > 65536) throw new DOMException(`The ArrayBufferView's byte length (${array.byteLength}) exceeds 65536`, 'QuotaExceededError');
    const bytes = new U8(random(array.byteLength));
    apply(taSet, new U8(array.buffer, array.byteOffset, array.byteLength), [bytes]);
    return array;
  }
  const hostCall = (call: WireCall | NodeCryptoCall) => cryptoRef.applySyncPromise(undefined, [call], { arguments: { copy: true } });
  const { subtle, sync } = makeSubtle(hostCall as CryptoHostCall);
  g.crypto = Object.freeze({
    subtle,
    DigestStream,
    getRandomValues,
    randomUUID(): string {
      const b = getRandomValues(new Uint8Array(16));
      b[6] = (b[6]! & 0x0f) | 0x40;
      b[8] = (b[8]! & 0x3f) | 0x80;
      const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  });
  // node:crypto's calls beyond WebCrypto (node-crypto-wire.ts): answered as the host gives them, errors included.
  return Object.freeze({ ...sync, node: (call: unknown) => hostCall(call as NodeCryptoCall) });
}
