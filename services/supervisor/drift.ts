/**
 * Compares what each service reports it runs with (lib/drift.ts) against the supervisor's own view:
 * the mesh settings it resolved itself, and its route table for ingress. A mismatch that outlasts
 * `graceMs` (a route update may be on its way) is drift: logged, audited once when it starts and
 * once when it ends, and shown in /healthz and GET /v1/drift.
 */
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import type { Logger } from '../../lib/log.ts';
import type { EffectiveState } from '../../schemas/services.ts';
import type { AuditLog } from './audit.ts';

const Hash = z.string().regex(/^[0-9a-f]{64}$/, 'a sha-256 hex digest');
const State = z.object({ config: Hash, routes: Hash.optional() }).strict();

type Aspect = 'config' | 'routes';

export interface DriftStatus {
  config: 'ok' | 'drift';
  routes?: 'ok' | 'drift';
  reportedAt: string;
}

interface Peer {
  state: EffectiveState;
  at: number;
  mismatchSince: Partial<Record<Aspect, number>>;
  drifting: Set<Aspect>;
}

export class DriftMonitor {
  readonly #desired: () => Required<EffectiveState>;
  readonly #audit: AuditLog;
  readonly #log: Logger;
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #peers = new Map<string, Peer>();

  constructor(opts: { desired: () => Required<EffectiveState>; audit: AuditLog; log: Logger; graceMs: number; now?: () => number }) {
    this.#desired = opts.desired;
    this.#audit = opts.audit;
    this.#log = opts.log;
    this.#graceMs = opts.graceMs;
    this.#now = opts.now ?? Date.now;
  }

  /** A report from `peer` ("ingress", "egress", "sandbox:<cordon>"), as the peer sent it: validated here. */
  report(peer: string, raw: unknown): void {
    const state = check(State, raw, 'effective state') as EffectiveState;
    const p = this.#peers.get(peer) ?? { state, at: 0, mismatchSince: {}, drifting: new Set<Aspect>() };
    p.state = state;
    p.at = this.#now();
    this.#peers.set(peer, p);
    this.#evaluate(peer, p);
  }

  /**
   * The peer went away: what it reported no longer describes anything running. A drifting peer is
   * kept, so that its successor's first good report ends the drift on the record.
   */
  forget(peer: string): void {
    if (!this.#peers.get(peer)?.drifting.size) this.#peers.delete(peer);
  }

  status(): Record<string, DriftStatus> {
    const out: Record<string, DriftStatus> = {};
    for (const [peer, p] of this.#peers) {
      out[peer] = { config: p.drifting.has('config') ? 'drift' : 'ok', reportedAt: new Date(p.at).toISOString() };
      if (p.state.routes !== undefined) out[peer]!.routes = p.drifting.has('routes') ? 'drift' : 'ok';
    }
    return out;
  }

  #evaluate(peer: string, p: Peer): void {
    const desired = this.#desired();
    for (const aspect of ['config', 'routes'] as const) {
      const actual = p.state[aspect];
      if (actual === undefined) continue;
      if (actual === desired[aspect]) {
        delete p.mismatchSince[aspect];
        if (p.drifting.delete(aspect)) {
          this.#log.info('drift resolved', { peer, aspect });
          this.#audit.append({ actor: 'supervisor', action: 'drift.resolved', target: peer, outcome: 'ok', detail: { aspect } });
        }
        continue;
      }
      const since = (p.mismatchSince[aspect] ??= p.at);
      if (p.at - since >= this.#graceMs && !p.drifting.has(aspect)) {
        p.drifting.add(aspect);
        this.#log.warn('drift: a service runs with other settings than the mesh means it to', { peer, aspect, expected: desired[aspect], actual });
        this.#audit.append({
          actor: 'supervisor',
          action: 'drift.detected',
          target: peer,
          outcome: 'error',
          detail: { aspect, expected: desired[aspect], actual },
        });
      }
    }
  }
}
