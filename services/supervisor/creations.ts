/**
 * What workers create, counted per worker and kind (Dynamic Workers they load…): reported by the
 * sandboxes in batches, shown by the admin API with the worker (`GET /v1/workers/<tenant>/<name>`),
 * and each batch written to the audit log. Counts are since this supervisor started; the audit log
 * keeps them for good.
 */
import type { CreationKind } from '../../schemas/services.ts';
import type { AuditLog } from './audit.ts';

export class Creations {
  readonly #counts = new Map<string, Partial<Record<CreationKind, number>>>();
  readonly #audit: AuditLog;

  constructor(audit: AuditLog) {
    this.#audit = audit;
  }

  /** `count` more of `kind` by `workerId`, as `actor` (a sandbox) reported them. */
  record(workerId: string, kind: CreationKind, count: number, actor: string): void {
    let byKind = this.#counts.get(workerId);
    if (!byKind) this.#counts.set(workerId, (byKind = {}));
    byKind[kind] = (byKind[kind] ?? 0) + count;
    this.#audit.append({ actor, action: `worker.created.${kind}`, target: workerId, outcome: 'ok', detail: { count } });
  }

  of(workerId: string): Partial<Record<CreationKind, number>> {
    return { ...this.#counts.get(workerId) };
  }

  /** The worker is gone: so are its counts. */
  forget(workerId: string): void {
    this.#counts.delete(workerId);
  }
}
