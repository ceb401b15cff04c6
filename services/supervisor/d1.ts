/**
 * A worker's D1 binding (`d1_databases`), over its tenant's database file. The file is the same kind
 * as a worker's storage database and is run the same way (sql-storage.ts: the authorizer, the quota,
 * defensive mode; sql-pool.ts: a SQL child process, killed at the worker's time limit); d1-store.ts
 * adds D1's result shape and its all-or-nothing batch.
 */
import { z } from 'zod';
import { bytes, check } from '../../lib/rpc/validate.ts';
import { D1_MAX_BATCH, type D1Api, type D1Result } from '../../schemas/d1.ts';
import { PooledDbCap } from './guarded.ts';
import { LIMITS } from './sql-storage.ts';

const Query = z.string().max(LIMITS.statementBytes * 4);
const Bindings = z.array(z.union([z.string(), z.number(), z.null(), bytes(LIMITS.valueBytes)])).max(LIMITS.boundParameters);
const Batch = z.array(z.tuple([Query, Bindings])).max(D1_MAX_BATCH);

export class D1Cap extends PooledDbCap implements D1Api {
  #call<T>(action: string, method: string, args: () => unknown[]): Promise<T> {
    return this.run(action, (call) => call(method, args()) as Promise<T>);
  }

  query(sql: unknown, bindings: unknown): Promise<D1Result> {
    return this.#call('d1.query', 'query', () => [check(Query, sql, 'query'), check(Bindings, bindings, 'bindings')]);
  }

  batch(statements: unknown): Promise<D1Result[]> {
    return this.#call('d1.batch', 'batch', () => [check(Batch, statements, 'batch')]);
  }

  exec(sql: unknown): Promise<{ count: number; duration: number }> {
    return this.#call('d1.exec', 'exec', () => [check(Query, sql, 'query')]);
  }
}
