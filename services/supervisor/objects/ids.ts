/**
 * Durable Object ids: 64 hex digits as on Cloudflare, bound by construction to one namespace — one
 * (tenant, worker, class). An id is 16 bytes of body and a 16-byte MAC of (namespace, body) under a
 * key derived from the supervisor's master key; only the supervisor holds it. A name's body is itself
 * a MAC of (namespace, name), so idFromName is the same id every time and in no other namespace; a
 * unique id's body is random. An id minted for another namespace, or made up, fails the MAC and is
 * refused before anything is looked up: no tenant can name another's object, even by copying its id.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const BODY = 16;

export class ObjectIds {
  readonly #key: Buffer;
  constructor(key: Buffer) {
    if (key.length < 32) throw new Error('the object id key must be at least 32 bytes');
    this.#key = key;
  }

  #mac(purpose: 'id' | 'name', namespace: string, data: Buffer | string): Buffer {
    // Length-prefixed, so no (namespace, data) pair reads as another.
    return createHmac('sha256', this.#key)
      .update(`${purpose}\0${Buffer.byteLength(namespace)}\0${namespace}\0`)
      .update(data)
      .digest()
      .subarray(0, BODY);
  }

  #seal(namespace: string, body: Buffer): string {
    return Buffer.concat([body, this.#mac('id', namespace, body)]).toString('hex');
  }

  /** idFromName: the same name gives the same id, in this namespace only. */
  fromName(namespace: string, name: string): string {
    return this.#seal(namespace, this.#mac('name', namespace, name));
  }

  /** newUniqueId: a random body. */
  unique(namespace: string): string {
    return this.#seal(namespace, randomBytes(BODY));
  }

  /** Whether `hex` is an id this supervisor minted for `namespace`. */
  valid(namespace: string, hex: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(hex)) return false;
    const raw = Buffer.from(hex, 'hex');
    return timingSafeEqual(raw.subarray(BODY), this.#mac('id', namespace, raw.subarray(0, BODY)));
  }

  /** Whether `hex` is the id of `name` in `namespace`. */
  isNamed(namespace: string, hex: string, name: string): boolean {
    const expected = Buffer.from(this.fromName(namespace, name), 'hex');
    return /^[0-9a-f]{64}$/.test(hex) && timingSafeEqual(Buffer.from(hex, 'hex'), expected);
  }
}

/** The namespace of a class of a worker: what an id is bound to. */
export function namespaceOf(workerId: string, className: string): string {
  return `${workerId}:${className}`;
}
