/** SQL statements prepared once per database: preparing costs more than running a small query. */
import type Database from 'better-sqlite3';

export class Statements {
  readonly #db: Database.Database;
  readonly #prepared = new Map<string, Database.Statement>();

  constructor(db: Database.Database) {
    this.#db = db;
  }

  get(sql: string): Database.Statement {
    let st = this.#prepared.get(sql);
    if (!st) this.#prepared.set(sql, (st = this.#db.prepare(sql)));
    return st;
  }
}
