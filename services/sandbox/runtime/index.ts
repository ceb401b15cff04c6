/**
 * The isolate host a sandbox uses: one warm isolate per worker version, least recently used evicted
 * beyond `maxIsolates`. A request that breaks a limit gets a WorkerError (safe to show a client);
 * its isolate is disposed and the next request gets a fresh one. Other workers never notice.
 */
import { Limits, type WorkerBundle } from '../../../schemas/worker.ts';
import type { LogEntry } from '../../../schemas/services.ts';
import type { WireRequest, WireResponse } from '../../../schemas/http.ts';
import { WorkerError, WorkerInstance, type CapabilityHost } from './instance.ts';
import { SpareIsolates } from './spares.ts';

export { WorkerError, type CapabilityHost } from './instance.ts';

export interface RunHooks {
  log(entries: LogEntry[]): void;
  /** Where the worker's `env` capability calls go (none: the worker declared no bindings). */
  capabilities?: CapabilityHost;
}

export class WorkerRuntime {
  readonly #instances = new Map<string, Promise<WorkerInstance>>();
  readonly #maxIsolates: number;
  readonly #onCatastrophe: (message: string) => void;
  readonly #spares: SpareIsolates | undefined;

  constructor(opts: { maxIsolates?: number; spares?: number; onCatastrophe?: (message: string) => void } = {}) {
    this.#maxIsolates = opts.maxIsolates ?? 200;
    // isolated-vm's advice for a catastrophic error: the process's V8 state is unrecoverable.
    this.#onCatastrophe =
      opts.onCatastrophe ??
      ((message) => {
        process.stderr.write(JSON.stringify({ level: 'error', msg: 'catastrophic isolate error; aborting', detail: message }) + '\n');
        process.abort();
      });
    const spares = opts.spares ?? 2;
    this.#spares = spares > 0 ? new SpareIsolates({ size: spares, memoryMb: Limits.parse({}).memoryMb, onCatastrophe: this.#onCatastrophe }) : undefined;
  }

  async handle(bundle: WorkerBundle, request: WireRequest, hooks: RunHooks): Promise<WireResponse> {
    const key = `${bundle.workerId}@${bundle.version}`;
    let instance: WorkerInstance;
    try {
      instance = await this.#instance(key, bundle);
    } catch (e) {
      const err = e instanceof WorkerError ? e : new WorkerError(500, 'worker failed to load', String(e));
      try {
        hooks.log([{ level: 'error', message: err.detail === err.message ? err.message : `${err.message}: ${err.detail}`, time: Date.now() }]);
      } catch {
        // a failing log sink must not change the answer
      }
      throw err;
    }
    try {
      // The instance logs the detail of a failure itself, before it rejects.
      return await instance.handle(request, hooks);
    } catch (e) {
      if (instance.disposed && (await this.#instances.get(key)?.catch(() => undefined)) === instance) this.#instances.delete(key);
      throw e instanceof WorkerError ? e : new WorkerError(500, 'worker failed', String(e));
    }
  }

  async #instance(key: string, bundle: WorkerBundle): Promise<WorkerInstance> {
    const existing = this.#instances.get(key);
    if (existing) {
      const inst = await existing.catch(() => undefined);
      if (inst && !inst.disposed) {
        // Map order is our LRU order: move to the back.
        this.#instances.delete(key);
        this.#instances.set(key, existing);
        return inst;
      }
      if (this.#instances.get(key) === existing) this.#instances.delete(key);
    }
    const created = WorkerInstance.create(bundle, this.#onCatastrophe, this.#spares?.take(bundle.limits.memoryMb));
    this.#instances.set(key, created);
    created.catch(() => {
      if (this.#instances.get(key) === created) this.#instances.delete(key);
    });
    while (this.#instances.size > this.#maxIsolates) {
      const [oldest, p] = this.#instances.entries().next().value!;
      this.#instances.delete(oldest);
      void p.then((i) => i.dispose('evicted'), () => {});
    }
    return created;
  }

  evict(workerId: string, version?: string): void {
    for (const [key, p] of this.#instances) {
      if (key === `${workerId}@${version}` || (version === undefined && key.startsWith(`${workerId}@`))) {
        this.#instances.delete(key);
        void p.then((i) => i.dispose('evicted'), () => {});
      }
    }
  }

  stats(): { isolates: number; spares: number } {
    return { isolates: this.#instances.size, spares: this.#spares?.ready ?? 0 };
  }

  dispose(): void {
    this.#spares?.dispose();
    for (const p of this.#instances.values()) void p.then((i) => i.dispose('evicted'), () => {});
    this.#instances.clear();
  }
}
