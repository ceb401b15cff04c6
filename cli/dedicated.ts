/**
 * The sandbox processes of the dedicated cordons (quarantine `q-…`, debug `d-…`) the supervisor makes
 * at run time: one per cordon, with a keyring issued for that cordon alone, restarted when it dies and
 * stopped when the cordon goes away. `cordon start`'s launcher feeds it from `<data>/cordons.json`;
 * in a cluster the agent (`cordon run dedicated`, cli/dedicated-agent.ts) from the supervisor over the mesh.
 */
import { CORDON_NAME, Keyring } from '../lib/rpc/index.ts';
import type { MemoryCeilings } from '../lib/memory-ceiling.ts';
import type { DedicatedCordons } from '../schemas/services.ts';
import { serviceSpec, ServiceProcess, type Confine } from './service-process.ts';

/** The dedicated cordons in `value` (the file's JSON, or the supervisor's answer); anything malformed is left out. */
export function dedicatedCordons(value: unknown): DedicatedCordons {
  const o = (typeof value === 'object' && value !== null ? value : {}) as { dynamic?: unknown; inspector?: unknown };
  const dynamic = Array.isArray(o.dynamic) ? o.dynamic.filter((c): c is string => typeof c === 'string' && CORDON_NAME.test(c)) : [];
  const inspector: Record<string, string> = {};
  if (o.inspector && typeof o.inspector === 'object') {
    for (const [c, token] of Object.entries(o.inspector)) if (typeof token === 'string' && /^[0-9a-f]{64}$/.test(token)) inspector[c] = token;
  }
  return { dynamic, inspector };
}

export class DedicatedSandboxes {
  readonly #running = new Map<string, ServiceProcess>();
  readonly #secret: Buffer;
  readonly #env: NodeJS.ProcessEnv;
  readonly #report: (msg: string) => void;
  readonly #opts: { confine?: Confine; ceilings?: MemoryCeilings };

  constructor(secret: Buffer, env: NodeJS.ProcessEnv, report: (msg: string) => void, opts: { confine?: Confine; ceilings?: MemoryCeilings }) {
    this.#secret = secret;
    this.#env = env;
    this.#report = report;
    this.#opts = opts;
  }

  /** Starts a process for each listed cordon that has none, and stops those of cordons no longer listed. */
  apply({ dynamic, inspector }: DedicatedCordons): void {
    for (const c of dynamic) {
      if (this.#running.has(c)) continue;
      const spec = serviceSpec(Keyring.forRole(this.#secret, 'sandbox', c));
      // A debug cordon (`cordon debug`): its process alone has the inspector, opened by this token's holder.
      const token = inspector[c];
      if (c.startsWith('d-') && token) spec.env.CORDON_INSPECTOR_TOKEN_SHA256 = token;
      const s = new ServiceProcess(spec, this.#env, this.#report, this.#opts);
      this.#running.set(c, s);
      this.#report(`starting a dedicated sandbox for cordon ${c}`);
      s.start();
    }
    for (const [c, s] of this.#running) {
      if (dynamic.includes(c)) continue;
      this.#running.delete(c);
      this.#report(`stopping the sandbox of cordon ${c}`);
      void s.stop();
    }
  }

  async stop(): Promise<void> {
    const all = [...this.#running.values()];
    this.#running.clear();
    await Promise.all(all.map((s) => s.stop()));
  }
}
