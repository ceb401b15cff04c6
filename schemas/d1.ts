/**
 * D1, as the supervisor serves it to a worker's `d1_databases` binding: the contract between the
 * sandbox and the supervisor (d1.ts there). A database belongs to the tenant of the worker that
 * binds it; its id (or name) names it within that tenant only.
 */
import type { SqlValue } from './capabilities.ts';

/** D1's `meta` of a result, as D1 reports it (`served_by` says who served it). */
export interface D1Meta {
  served_by: string;
  duration: number;
  changes: number;
  last_row_id: number;
  changed_db: boolean;
  size_after: number;
  rows_read: number;
  rows_written: number;
}

export interface D1Result {
  columnNames: string[];
  rows: SqlValue[][];
  meta: D1Meta;
}

export interface D1Api {
  /** One prepared statement with its bindings. */
  query(sql: string, bindings: SqlValue[]): Promise<D1Result>;
  /** Statements in order, in one transaction: all are applied, or none. */
  batch(statements: [string, SqlValue[]][]): Promise<D1Result[]>;
  /** Statements without bindings, each on its own. */
  exec(sql: string): Promise<{ count: number; duration: number }>;
}
export const D1_METHODS = ['query', 'batch', 'exec'] as const satisfies readonly (keyof D1Api)[];
/** Statements in one batch at most. */
export const D1_MAX_BATCH = 1000;
