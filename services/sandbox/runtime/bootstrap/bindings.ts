/**
 * The `env` objects for capability bindings, inside the isolate. `sql.exec` is synchronous, as in
 * Workers: the call blocks this isolate (only this one) until the supervisor answers. Directory and
 * KV methods return promises. Every call goes out through one host function taken from the global
 * scope at start-up and kept in this closure.
 */
import { TextDecoder, TextEncoder } from './encoding.ts';
import { fromMessage, toMessage, type Base64, type WireMessage } from './wire-codec.ts';

export type CapCall = (handle: string, method: string, args: unknown[]) => unknown;

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_CODES = new Uint8Array(64);
const B64_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  B64_CODES[i] = B64.charCodeAt(i);
  B64_VALUES[B64.charCodeAt(i)] = i;
}
const fromCharCode = String.fromCharCode;
const applyFn = Reflect.apply;
/** Bytes per piece of the encoded text (a multiple of 3, and few enough arguments for one fromCharCode call). */
const B64_PIECE = 3 * 8192;

/**
 * Bytes ↔ base64 for values kept or sent on as text (workflow values, RPC's tagged values). Straight from bytes to character codes and back (no
 * binary string, no btoa/atob): measured about 5 times faster to encode and 10 times to decode 4 MiB,
 * which is what lets a large value cross within a worker's CPU limit. Capability calls carry bytes
 * beside their text instead (wire-codec.ts, WireMessage): no encoding at all.
 */
export const b64: Base64 = {
  encode(bytes) {
    const parts: string[] = [];
    const codes = new Uint16Array((B64_PIECE / 3) * 4);
    for (let start = 0; start < bytes.length; start += B64_PIECE) {
      const end = start + B64_PIECE < bytes.length ? start + B64_PIECE : bytes.length;
      let o = 0;
      let i = start;
      for (; i + 2 < end; i += 3) {
        const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
        codes[o++] = B64_CODES[n >> 18]!;
        codes[o++] = B64_CODES[(n >> 12) & 63]!;
        codes[o++] = B64_CODES[(n >> 6) & 63]!;
        codes[o++] = B64_CODES[n & 63]!;
      }
      if (i < end) {
        const n = (bytes[i]! << 16) | (i + 1 < end ? bytes[i + 1]! << 8 : 0);
        codes[o++] = B64_CODES[n >> 18]!;
        codes[o++] = B64_CODES[(n >> 12) & 63]!;
        codes[o++] = i + 1 < end ? B64_CODES[(n >> 6) & 63]! : 61;
        codes[o++] = 61;
      }
      parts.push(applyFn(fromCharCode, undefined, codes.subarray(0, o) as unknown as number[]));
    }
    return parts.join('');
  },
  decode(text) {
    let len = text.length;
    while (len > 0 && text.charCodeAt(len - 1) === 61) len--;
    const out = new Uint8Array(Math.floor((len * 3) / 4));
    let o = 0;
    let acc = 0;
    let bits = 0;
    for (let i = 0; i < len; i++) {
      const c = text.charCodeAt(i);
      const v = c < 128 ? B64_VALUES[c]! : -1;
      if (v < 0) throw new TypeError('malformed base64 from the host');
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[o++] = (acc >> bits) & 0xff;
      }
    }
    return out;
  },
};

function unwrapReply(message: WireMessage, onTime?: (now: number) => void): unknown {
  const reply = fromMessage(message) as { ok?: unknown; error?: string; now?: number };
  if (onTime && typeof reply.now === 'number') onTime(reply.now);
  if (reply.error !== undefined) throw new Error(reply.error);
  return reply.ok;
}

/** Wrap the raw host function (a WireMessage each way) into a call that speaks values. */
export function capCaller(raw: (handle: string, method: string, args: WireMessage) => WireMessage): CapCall {
  return (handle, method, args) => unwrapReply(raw(handle, method, toMessage(args)));
}

/**
 * The same, without blocking the isolate: for calls that may take long (fetch). Their replies are I/O
 * events: the host stamps them with its time and `onTime` moves the frozen clock.
 */
export function asyncCapCaller(
  raw: (handle: string, method: string, args: WireMessage) => Promise<WireMessage>,
  onTime?: (now: number) => void,
): (handle: string, method: string, args: unknown[]) => Promise<unknown> {
  return async (handle, method, args) => unwrapReply(await raw(handle, method, toMessage(args)), onTime);
}

type SqlValue = string | number | null | ArrayBuffer;

function toValue(v: unknown): SqlValue {
  if (v instanceof Uint8Array) return v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer;
  return v as SqlValue;
}

function toBinding(v: unknown): unknown {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return Number(v);
  return v;
}

/** A binding of `sql.exec`, as workerd takes it: a boolean as its text ('true', 'false'), a bigint refused. */
function sqlBinding(v: unknown): unknown {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') throw new TypeError('Cannot convert a BigInt value to a number');
  return toBinding(v);
}

class SqlStorageCursor implements Iterable<Record<string, SqlValue>> {
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
  readonly #rows: SqlValue[][];
  #next = 0;
  constructor(r: { columnNames: string[]; rows: unknown[][]; rowsRead: number; rowsWritten: number }) {
    this.columnNames = r.columnNames;
    this.rowsRead = r.rowsRead;
    this.rowsWritten = r.rowsWritten;
    this.#rows = r.rows.map((row) => row.map(toValue));
  }
  #object(row: SqlValue[]): Record<string, SqlValue> {
    const o: Record<string, SqlValue> = {};
    this.columnNames.forEach((c, i) => (o[c] = row[i]!));
    return o;
  }
  next(): { done: false; value: Record<string, SqlValue> } | { done: true; value?: undefined } {
    const row = this.#rows[this.#next];
    if (!row) return { done: true };
    this.#next++;
    return { done: false, value: this.#object(row) };
  }
  toArray(): Record<string, SqlValue>[] {
    const out = this.#rows.slice(this.#next).map((r) => this.#object(r));
    this.#next = this.#rows.length;
    return out;
  }
  one(): Record<string, SqlValue> {
    const rest = this.toArray();
    if (rest.length !== 1) throw new Error(`Expected exactly one result from SQL query, but got ${rest.length === 0 ? 'no results' : 'multiple results'}.`);
    return rest[0]!;
  }
  *raw(): IterableIterator<SqlValue[]> {
    while (this.#next < this.#rows.length) yield this.#rows[this.#next++]!;
  }
  [Symbol.iterator](): Iterator<Record<string, SqlValue>> {
    return { next: () => this.next() } as Iterator<Record<string, SqlValue>>;
  }
}

export function storageBinding(call: CapCall, handle: string): object {
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const sql = Object.freeze({
    exec(query: string, ...bindings: unknown[]) {
      return new SqlStorageCursor(call(handle, 'exec', [String(query), bindings.map(sqlBinding)]) as ConstructorParameters<typeof SqlStorageCursor>[0]);
    },
    get databaseSize(): number {
      return call(handle, 'databaseSize', []) as number;
    },
  });
  return Object.freeze({
    sql,
    transactionSync<T>(fn: () => T): T {
      call(handle, 'begin', []);
      let result: T;
      try {
        result = fn();
        if (result && typeof (result as { then?: unknown }).then === 'function') throw new TypeError('transactionSync() callbacks must be synchronous');
      } catch (e) {
        call(handle, 'rollback', []);
        throw e;
      }
      call(handle, 'commit', []);
      return result;
    },
    async get(key: string): Promise<unknown> {
      const v = call(handle, 'kvGet', [String(key)]) as Uint8Array | null;
      return v === null ? undefined : JSON.parse(dec.decode(v));
    },
    async put(key: string, value: unknown): Promise<void> {
      if (value === undefined) throw new TypeError('put() needs a value');
      call(handle, 'kvPut', [String(key), enc.encode(JSON.stringify(value))]);
    },
    async delete(key: string): Promise<boolean> {
      return call(handle, 'kvDelete', [String(key)]) as boolean;
    },
    async list(options: { prefix?: string; limit?: number } = {}): Promise<Map<string, unknown>> {
      const rows = call(handle, 'kvList', [String(options.prefix ?? ''), Math.min(Math.max(1, Number(options.limit ?? 1000) | 0), 10_000)]) as [
        string,
        Uint8Array,
      ][];
      return new Map(rows.map(([k, v]) => [k, JSON.parse(dec.decode(v))]));
    },
  });
}

export function directoryBinding(call: CapCall, handle: string): object {
  const method =
    (name: string) =>
    async (...args: unknown[]) =>
      call(handle, name, args.map(toBinding));
  return Object.freeze({
    list: method('list'),
    read: method('read'),
    write: async (path: string, data: unknown) => {
      const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : toBinding(data);
      return call(handle, 'write', [path, bytes]);
    },
    remove: method('remove'),
    stat: method('stat'),
    mkdir: method('mkdir'),
    rename: method('rename'),
    async directory(path: string) {
      const sub = call(handle, 'directory', [path]) as { $h: string };
      return directoryBinding(call, sub.$h);
    },
  });
}
