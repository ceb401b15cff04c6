/**
 * KV values larger than one part (`KV_LIMITS.partBytes`) in transit between a worker and its namespace:
 * an upload is filled part by part before its `put`, a download is read part by part after its `get`,
 * so no message between sandbox and supervisor carries more than a part (the mesh's per-message limit
 * stays as it is). Each transfer holds the value once, in one buffer of its final size, belongs to the
 * capability that made it (another worker cannot name it: its name is random, and checked against its
 * owner) and is dropped when idle.
 *
 * What may be in transit at once is bounded per tenant and in all (`KV_LIMITS.tenantTransitBytes`,
 * `transitBytes`), so a tenant moving many large values holds at most its share of the supervisor's
 * memory; values of one part or less never need a transfer, so other tenants' calls are never held up.
 */
import { randomUUID } from 'node:crypto';
import { CordonError } from '../../lib/errors.ts';
import { KV_LIMITS } from '../../schemas/kv.ts';

interface Transfer {
  owner: object;
  tenant: string;
  bytes: Buffer;
  /** Bytes written (an upload) or read (a download) so far. */
  at: number;
  timer: NodeJS.Timeout;
}

/** The transfers of this process, with their bytes per tenant and in all. */
export class KvTransit {
  readonly #transfers = new Map<string, Transfer>();
  readonly #tenantBytes = new Map<string, number>();
  #bytes = 0;
  readonly #limits: { tenant: number; all: number; idleMs: number };

  constructor(limits = { tenant: KV_LIMITS.tenantTransitBytes, all: KV_LIMITS.transitBytes, idleMs: KV_LIMITS.transitIdleMs }) {
    this.#limits = limits;
  }

  /** Bytes in transit for `tenant` (or in all). */
  inTransit(tenant?: string): number {
    return tenant === undefined ? this.#bytes : (this.#tenantBytes.get(tenant) ?? 0);
  }

  /** A new transfer of `size` bytes (an upload's buffer, or a download's value), or a 429 when over a bound. */
  open(owner: object, tenant: string, op: 'GET' | 'PUT', size: number, value?: Buffer): string {
    const mine = this.inTransit(tenant);
    if (mine + size > this.#limits.tenant || this.#bytes + size > this.#limits.all)
      throw new CordonError(
        `KV ${op} failed: 429 Too many large values in transit for this ${mine + size > this.#limits.tenant ? 'tenant' : 'server'} (at most ${Math.floor((mine + size > this.#limits.tenant ? this.#limits.tenant : this.#limits.all) / 1048576)} MiB at once); retry once others have finished`,
        { status: 429 },
      );
    const name = randomUUID();
    this.#tenantBytes.set(tenant, mine + size);
    this.#bytes += size;
    const t: Transfer = { owner, tenant, bytes: value ?? Buffer.allocUnsafe(size), at: 0, timer: this.#idle(name) };
    this.#transfers.set(name, t);
    return name;
  }

  /** Appends `part` to upload `name`; past its size is a refusal. */
  append(owner: object, name: string, part: Uint8Array): void {
    const t = this.#own(owner, name, 'upload');
    if (t.at + part.byteLength > t.bytes.byteLength) {
      this.close(name);
      throw new CordonError(`invalid part: the upload holds ${t.bytes.byteLength} bytes, and this part goes past them`, { status: 400, refusal: true });
    }
    t.bytes.set(part, t.at);
    t.at += part.byteLength;
    this.#touch(name, t);
  }

  /** Upload `name`'s value, once it is complete; the transfer stays counted until `close`. */
  complete(owner: object, name: string): Buffer {
    const t = this.#own(owner, name, 'value');
    if (t.at !== t.bytes.byteLength) {
      this.close(name);
      throw new CordonError(`invalid value: the upload holds ${t.at} of its ${t.bytes.byteLength} bytes`, { status: 400, refusal: true });
    }
    return t.bytes;
  }

  /** The part of download `name` at `offset` (the next one: parts are read in order); the last one closes it. */
  read(owner: object, name: string, offset: number): Uint8Array {
    const t = this.#own(owner, name, 'download');
    if (offset !== t.at) throw new CordonError(`invalid offset: the download is at byte ${t.at}`, { status: 400, refusal: true });
    const end = Math.min(t.bytes.byteLength, offset + KV_LIMITS.partBytes);
    const part = new Uint8Array(t.bytes.buffer, t.bytes.byteOffset + offset, end - offset);
    t.at = end;
    if (end === t.bytes.byteLength) this.close(name);
    else this.#touch(name, t);
    return part;
  }

  close(name: string): void {
    const t = this.#transfers.get(name);
    if (!t) return;
    clearTimeout(t.timer);
    this.#transfers.delete(name);
    const left = (this.#tenantBytes.get(t.tenant) ?? 0) - t.bytes.byteLength;
    if (left > 0) this.#tenantBytes.set(t.tenant, left);
    else this.#tenantBytes.delete(t.tenant);
    this.#bytes -= t.bytes.byteLength;
  }

  #own(owner: object, name: string, what: string): Transfer {
    const t = this.#transfers.get(name);
    if (!t || t.owner !== owner) throw new CordonError(`invalid ${what}: no transfer of that name is open for this binding`, { status: 400, refusal: true });
    return t;
  }

  #touch(name: string, t: Transfer): void {
    clearTimeout(t.timer);
    t.timer = this.#idle(name);
  }

  #idle(name: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.close(name), this.#limits.idleMs);
    timer.unref();
    return timer;
  }
}

/** The supervisor's one transit: the bounds are for the whole process. */
export const kvTransit = new KvTransit();
