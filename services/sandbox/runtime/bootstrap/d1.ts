/**
 * A `d1_databases` binding as Workers has it (D1Database): prepare/bind/first/all/run/raw, batch
 * (one transaction), exec, withSession. Results have D1's shape (`success`, `meta`, `results`);
 * BLOB columns come back as arrays of numbers and errors start `D1_ERROR:`, as D1's do.
 */
import type { CallAsync } from './workflow-step.ts';

const isArray = Array.isArray;
const arrayFrom = Array.from;
const U8 = Uint8Array;
const freeze = Object.freeze;
const StringCtor = String;
const ErrorCtor = Error;

type Value = string | number | null | Uint8Array;
interface Result {
  columnNames: string[];
  rows: Value[][];
  meta: Record<string, unknown>;
}

function bindValue(v: unknown): Value {
  if (v === null || typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof ArrayBuffer) return new U8(v.slice(0));
  if (ArrayBuffer.isView(v)) return new U8(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  throw new TypeError(`D1_TYPE_ERROR: Type '${typeof v}' not supported for value '${StringCtor(v)}'`);
}

/** A column value as D1 returns it: BLOBs as arrays of numbers. */
const outValue = (v: Value) => (v instanceof U8 ? arrayFrom(v) : v);

function objects(r: Result): Record<string, unknown>[] {
  return r.rows.map((row) => {
    const o: Record<string, unknown> = {};
    r.columnNames.forEach((c, i) => (o[c] = outValue(row[i]!)));
    return o;
  });
}

const d1Result = (r: Result) => ({ success: true, meta: r.meta, results: objects(r) });

async function d1Call<T>(call: CallAsync, handle: string, method: string, args: unknown[], prefix = 'D1_ERROR'): Promise<T> {
  try {
    return (await call(handle, method, args)) as T;
  } catch (e) {
    throw new ErrorCtor(`${prefix}: ${(e as Error).message}`, { cause: e });
  }
}

class D1PreparedStatement {
  readonly #call: CallAsync;
  readonly #handle: string;
  readonly #sql: string;
  readonly #params: Value[];
  constructor(call: CallAsync, handle: string, sql: string, params: Value[]) {
    this.#call = call;
    this.#handle = handle;
    this.#sql = sql;
    this.#params = params;
  }
  /** The statement and its bindings, for batch(). */
  static wire(s: D1PreparedStatement): [string, Value[]] {
    return [s.#sql, s.#params];
  }
  bind(...values: unknown[]): D1PreparedStatement {
    return new D1PreparedStatement(this.#call, this.#handle, this.#sql, values.map(bindValue));
  }
  #run(): Promise<Result> {
    return d1Call<Result>(this.#call, this.#handle, 'query', [this.#sql, this.#params]);
  }
  async first(column?: string): Promise<unknown> {
    const r = await this.#run();
    const row = objects(r)[0];
    if (column === undefined) return row ?? null;
    if (!row) return null;
    if (!(column in row)) throw new ErrorCtor('D1_COLUMN_NOTFOUND: Column not found');
    return row[column];
  }
  async all(): Promise<unknown> {
    return d1Result(await this.#run());
  }
  async run(): Promise<unknown> {
    return d1Result(await this.#run());
  }
  async raw(options?: { columnNames?: boolean }): Promise<unknown[][]> {
    const r = await this.#run();
    const rows = r.rows.map((row) => row.map(outValue));
    return options?.columnNames ? [r.columnNames, ...rows] : rows;
  }
}

/** Bookmarks name a point in the database's history; here every read is from the one primary, so any bookmark is already met. */
const BOOKMARK = '00000000-00000000-00000000-cordon';

function database(call: CallAsync, handle: string) {
  return {
    prepare: (query: unknown) => new D1PreparedStatement(call, handle, StringCtor(query), []),
    async batch(statements: unknown): Promise<unknown[]> {
      if (!isArray(statements) || !statements.every((s) => s instanceof D1PreparedStatement))
        throw new TypeError('batch() takes an array of statements from prepare()');
      if (statements.length === 0) return [];
      const results = await d1Call<Result[]>(call, handle, 'batch', [statements.map((s) => D1PreparedStatement.wire(s))]);
      return results.map(d1Result);
    },
    exec: (query: unknown) => d1Call<{ count: number; duration: number }>(call, handle, 'exec', [StringCtor(query)], 'D1_EXEC_ERROR'),
  };
}

export function d1Binding(call: CallAsync, handle: string): object {
  const db = database(call, handle);
  return freeze({
    ...db,
    /** D1's sessions API: accepted; reads and writes all go to the one primary (see docs/kv-d1-queues.md). */
    withSession(_constraintOrBookmark?: unknown) {
      const { prepare, batch } = db;
      return freeze({ prepare, batch, getBookmark: () => BOOKMARK });
    },
    /** Deprecated by D1 itself (it works only on Cloudflare's alpha databases); its successor is an export, for operators. */
    async dump(): Promise<never> {
      throw new ErrorCtor(
        'D1_DUMP_ERROR: dump() is deprecated by D1 and works only on its alpha databases; export a database with `cordon d1 export <tenant>/<database>` (as wrangler d1 export)',
      );
    },
  });
}
