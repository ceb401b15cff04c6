/**
 * The `env` objects for capability bindings, inside the isolate. `sql.exec` is synchronous, as in
 * Workers: the call blocks this isolate (only this one) until the supervisor answers. Directory and
 * KV methods return promises. Every call goes out through one host function taken from the global
 * scope at start-up and kept in this closure.
 */
import { atob, btoa, TextDecoder, TextEncoder } from './encoding.ts';
import { decodeWire, encodeWire, type Base64 } from './wire-codec.ts';

export type CapCall = (handle: string, method: string, args: unknown[]) => unknown;

export const b64: Base64 = {
  encode(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  },
  decode(text) {
    const s = atob(text);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  },
};

function unwrapReply(text: string, onTime?: (now: number) => void): unknown {
  const reply = decodeWire(text, b64) as { ok?: unknown; error?: string; now?: number };
  if (onTime && typeof reply.now === 'number') onTime(reply.now);
  if (reply.error !== undefined) throw new Error(reply.error);
  return reply.ok;
}

/** Wrap the raw host function (text in, text out) into a call that speaks values. */
export function capCaller(raw: (handle: string, method: string, args: string) => string): CapCall {
  return (handle, method, args) => unwrapReply(raw(handle, method, encodeWire(args, b64)));
}

/**
 * The same, without blocking the isolate: for calls that may take long (fetch). Their replies are I/O
 * events: the host stamps them with its time and `onTime` moves the frozen clock.
 */
export function asyncCapCaller(
  raw: (handle: string, method: string, args: string) => Promise<string>,
  onTime?: (now: number) => void,
): (handle: string, method: string, args: unknown[]) => Promise<unknown> {
  return async (handle, method, args) => unwrapReply(await raw(handle, method, encodeWire(args, b64)), onTime);
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
      return new SqlStorageCursor(call(handle, 'exec', [String(query), bindings.map(toBinding)]) as ConstructorParameters<typeof SqlStorageCursor>[0]);
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
