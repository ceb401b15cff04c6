/**
 * Dynamic Workers in a stricter cordon than their parent's (docs/dynamic-workers.md, "A stricter cordon
 * for loaded Workers"), the supervisor's part. Which cordon that is (loadedCordonOf); the parent's
 * `worker_loaders` binding as a capability (LoaderCap), which hands each load to a sandbox process of
 * the loaded cordon and relays each call's session without reading it; and, per load, the one way back
 * into the parent that process gets (ParentLink): the env stubs and outbound the parent gave, whose
 * props stay here, its inherited fetch, and its reports (counted for that parent, and no other).
 */
import { RpcTarget, type RpcStub } from 'capnweb';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { check } from '../../lib/rpc/validate.ts';
import { CordonError } from '../../lib/errors.ts';
import { BindingProps, EntrypointName, type RpcPipe } from '../../schemas/service-bindings.ts';
import type { FetcherApi, FetchResponse, OpenedSocket } from '../../schemas/capabilities.ts';
import type { LoadedWorkerHost, LoaderApi, ParentLinkApi, RemoteParent } from '../../schemas/loaded-cordon.ts';
import type { LogEntry, WorkerRunner } from '../../schemas/services.ts';
import type { WorkerBundle } from '../../schemas/worker.ts';
import { LOADER_LIMITS, NO_GLOBAL_OUTBOUND, OUTBOUND_BINDING } from '../sandbox/runtime/abi.ts';
import { guarded, type Audit } from './guarded.ts';
import { RelayPipe, type ServiceSessions } from './service-bindings.ts';
import { LogEntries } from './ports.ts';
import type { CodeStore } from './store.ts';

export interface LoadedCordonDeps {
  store: Pick<CodeStore, 'worker' | 'codeKeyForVersion' | 'bundleForKey'>;
  /** The configured cordons, most trusted first (CORDON_CORDONS). */
  cordons: readonly string[];
  /** The operator's default loaded cordon (CORDON_DYNAMIC_WORKER_CORDON), for workers that chose none. */
  fallback: string | undefined;
  /** A cordon's runner that is the same for the same key (what it loaded is found there again). */
  pinned(cordon: string, key: string): RpcStub<WorkerRunner & LoadedWorkerHost> | undefined;
  /** Any runner of a cordon (the parent's entrypoints are served by any of its processes). */
  runner(cordon: string): RpcStub<WorkerRunner> | undefined;
  limitHit(workerId: string, kind: 'cpu' | 'memory'): void;
  created(workerId: string, actor: string): void;
  log(workerId: string, entries: LogEntry[]): void;
  /** Where relayed sessions are registered, so that the parent's undeploy or move closes them (service-bindings.ts). */
  sessions: Pick<ServiceSessions, 'add'>;
}

/**
 * Where a worker's loaded Workers run while it runs in `cordon`: a configured cordon less trusted than
 * that one (its choice, else the operator's default), or undefined for its own process. A worker in a
 * quarantine or debug cordon (not configured: made for it alone) keeps them there, its strictest place.
 */
export function loadedCordonOf(
  deps: Pick<LoadedCordonDeps, 'cordons' | 'fallback'>,
  bundle: Pick<WorkerBundle, 'loadedCordon'>,
  cordon: string,
): string | undefined {
  const chosen = bundle.loadedCordon ?? deps.fallback;
  const here = deps.cordons.indexOf(cordon);
  if (chosen === undefined || here < 0) return undefined;
  return deps.cordons.indexOf(chosen) > here ? chosen : undefined;
}

/** Per worker version, what loadedHost needs of its bundle (opening a bundle costs a decryption): its loader bindings and loaded cordon. */
const loaderBindings = new Map<string, { loaders: Set<string>; loadedCordon: string | undefined }>();
const MAX_KNOWN_VERSIONS = 1024;

/**
 * The loaded cordon's process that holds (or will hold) Worker `token` of loader `binding` of worker
 * `workerId`'s current version — the one LoaderCap hands its loads to — or undefined when that worker has no
 * such binding, or its loaded Workers run in its own process now. A facet of a loaded class runs there
 * (objects/loaded-facets.ts).
 */
export function loadedHost(
  deps: Pick<LoadedCordonDeps, 'store' | 'cordons' | 'fallback' | 'pinned'>,
  workerId: string,
  binding: string,
  token: string,
): { runner: RpcStub<LoadedWorkerHost>; parentRef: string } | undefined {
  const worker = deps.store.worker(workerId);
  if (!worker) return undefined;
  const parentRef = `${workerId}@${worker.version}`;
  let known = loaderBindings.get(parentRef);
  if (!known) {
    const bundle = deps.store.bundleForKey(worker.codeKey)?.bundle;
    if (!bundle) return undefined;
    known = { loaders: new Set(bundle.bindings.filter((b) => b.type === 'loader').map((b) => b.name)), loadedCordon: bundle.loadedCordon };
    if (loaderBindings.size >= MAX_KNOWN_VERSIONS) loaderBindings.delete(loaderBindings.keys().next().value!);
    loaderBindings.set(parentRef, known);
  }
  const cordon = known.loaders.has(binding) ? loadedCordonOf(deps, known, worker.cordon) : undefined;
  const runner = cordon === undefined ? undefined : deps.pinned(cordon, pinKey(parentRef, binding, token));
  return runner && { runner, parentRef };
}

/** Which of the loaded cordon's processes holds a Worker: the same one for the same parent, binding and token. */
function pinKey(parentRef: string, binding: string, token: string): string {
  return `${parentRef}#${binding}:${token}`;
}

const Ref = z.strictObject({ exportName: EntrypointName, props: z.string().max(LOADER_LIMITS.envBytes).nullable() });
type Ref = z.infer<typeof Ref>;
/** What of the code the supervisor reads: the stubs and the outbound (the rest is the loaded cordon's to check). */
const CodeRefs = z.looseObject({
  stubs: z.record(z.string().max(128), Ref),
  globalOutbound: z.union([z.literal('inherit'), z.null(), Ref]),
});
const Token = z
  .string()
  .regex(/^(id|anon):/)
  .max(LOADER_LIMITS.idLength + 5);
const Target = z.tuple([z.string().max(64), Token, EntrypointName, z.string().max(LOADER_LIMITS.envBytes).nullable()]);

/** A stub's props as the parent's entrypoint gets them (ctx.props), checked as a service binding's. */
function propsOf(ref: Ref): Record<string, unknown> {
  const props: unknown = ref.props === null ? {} : JSON.parse(ref.props);
  const ok = BindingProps.safeParse(props);
  if (!ok.success)
    throw new CordonError(`the props of ${ref.exportName} passed to a Worker in a loaded cordon must be a JSON object of at most 16 KiB`, { status: 400 });
  return ok.data;
}

/** What the other process answered, failures included, is the caller's to read (a load that failed says why). */
function answered<T>(call: Promise<T>): Promise<T> {
  return Promise.resolve(call).catch((e: Error) => {
    throw new CordonError(String(e?.message ?? e).slice(0, 1000), { status: 502 });
  });
}

const isCapability = (v: unknown): v is RpcStub<RpcPipe> => typeof (v as { dup?: unknown } | null)?.dup === 'function';

/**
 * Relay a session of `parent`'s (into it, or into one of its loaded Workers): `open` gets a relay of the
 * caller's end; the other side's end comes back as a relay too. The session is registered as one into the
 * parent, so that undeploying or moving the parent closes it, as a service binding's.
 */
async function relay(deps: LoadedCordonDeps, parent: string, caller: unknown, open: (end: RelayPipe) => Promise<unknown>): Promise<RpcPipe> {
  if (!isCapability(caller)) throw new CordonError('caller must be a capability', { status: 400, refusal: true });
  const worker = deps.store.worker(parent);
  if (!worker) throw new CordonError(`${parent} is no longer deployed`, { status: 410 });
  const callerEnd = new RelayPipe(caller.dup());
  try {
    const otherEnd = new RelayPipe((await open(callerEnd)) as RpcStub<RpcPipe>);
    deps.sessions.add(parent, worker.cordon, worker.tenant, [callerEnd, otherEnd]);
    return otherEnd;
  } catch (e) {
    callerEnd[Symbol.dispose]();
    throw e;
  }
}

/** The one way back into its parent a loaded Worker has in the loaded cordon's process (made per load). */
export class ParentLink extends RpcTarget implements ParentLinkApi {
  readonly #deps: LoadedCordonDeps;
  readonly #parent: WorkerBundle;
  readonly #stubs: Record<string, Ref>;
  readonly #outbound: 'inherit' | null | Ref;
  readonly #fetch: FetcherApi;
  readonly #audit: Audit;
  readonly #actor: string;
  constructor(deps: LoadedCordonDeps, parent: WorkerBundle, code: z.infer<typeof CodeRefs>, fetch: FetcherApi, audit: Audit, actor: string) {
    super();
    this.#deps = deps;
    this.#parent = parent;
    this.#stubs = code.stubs;
    this.#outbound = code.globalOutbound;
    this.#fetch = fetch;
    this.#audit = audit;
    this.#actor = actor;
  }

  connect(name: unknown, caller: unknown): Promise<RpcPipe> {
    return guarded(this.#audit, 'loader.parent.connect', () => {
      const gateway = this.#outbound !== null && this.#outbound !== 'inherit' ? this.#outbound : undefined;
      const ref = name === OUTBOUND_BINDING ? gateway : typeof name === 'string' && Object.hasOwn(this.#stubs, name) ? this.#stubs[name] : undefined;
      if (!ref) throw new CordonError(`no binding ${String(name).slice(0, 100)} to call: the parent passed no such entrypoint`, { status: 403, refusal: true });
      const { workerId, version } = this.#parent;
      const codeKey = this.#deps.store.codeKeyForVersion(workerId, version);
      const cordon = this.#deps.store.worker(workerId)?.cordon;
      if (!codeKey || !cordon) throw new CordonError(`${workerId} (version ${version}) is no longer deployed`, { status: 410 });
      const runner = this.#deps.runner(cordon);
      if (!runner) throw new CordonError(`${workerId}: its cordon ${cordon} is not connected; retry`, { status: 503 });
      return relay(this.#deps, workerId, caller, (end) => answered(runner.serve(codeKey, ref.exportName, propsOf(ref), end)));
    });
  }

  fetch(request: unknown): Promise<FetchResponse> {
    if (this.#outbound !== 'inherit') return Promise.reject(new CordonError(NO_GLOBAL_OUTBOUND, { status: 403, refusal: true }));
    return Promise.resolve(this.#fetch.fetch(request as never));
  }

  /** As fetch(): the parent's own egress capability (its identity, its policy) checks the destination and options. */
  openSocket(target: unknown, options: unknown): Promise<OpenedSocket> {
    if (this.#outbound !== 'inherit') return Promise.reject(new CordonError(NO_GLOBAL_OUTBOUND, { status: 403, refusal: true }));
    return Promise.resolve(this.#fetch.connect(target as never, options as never));
  }

  async limitHit(kind: unknown): Promise<void> {
    this.#deps.limitHit(this.#parent.workerId, check(z.enum(['cpu', 'memory']), kind, 'limit'));
  }

  async created(): Promise<void> {
    this.#deps.created(this.#parent.workerId, this.#actor);
  }

  async log(entries: unknown): Promise<void> {
    this.#deps.log(this.#parent.workerId, check(LogEntries, entries, 'log entries') as LogEntry[]);
  }
}

/** `env.<BINDING>` of a `worker_loaders` binding whose Workers run in a loaded cordon. */
export class LoaderCap extends RpcTarget implements LoaderApi {
  readonly #deps: LoadedCordonDeps;
  readonly #parent: WorkerBundle;
  readonly #binding: string;
  readonly #cordon: string;
  readonly #fetch: FetcherApi;
  readonly #audit: Audit;
  readonly #wrap: <T extends object>(target: T) => T;
  /** `wrap`: what the parent's grant membrane does, so undeploy and quarantine revoke every link too. */
  constructor(
    deps: LoadedCordonDeps,
    parent: WorkerBundle,
    binding: string,
    cordon: string,
    fetch: FetcherApi,
    audit: Audit,
    wrap: <T extends object>(target: T) => T,
  ) {
    super();
    this.#deps = deps;
    this.#parent = parent;
    this.#binding = binding;
    this.#cordon = cordon;
    this.#fetch = fetch;
    this.#audit = audit;
    this.#wrap = wrap;
  }

  get #ref(): string {
    return `${this.#parent.workerId}@${this.#parent.version}`;
  }

  /** The loaded cordon's process for this Worker: the same one for the same token while the cordon's processes stay. */
  #runner(token: string): RpcStub<WorkerRunner & LoadedWorkerHost> {
    const runner = this.#deps.pinned(this.#cordon, pinKey(this.#ref, this.#binding, token));
    if (!runner) throw new CordonError(`the loaded cordon ${this.#cordon} of ${this.#parent.workerId} is not connected; retry`, { status: 503 });
    return runner;
  }

  held(token: unknown): Promise<boolean> {
    return guarded(this.#audit, 'loader.held', async () => {
      const t = check(Token, token, 'token');
      return (await answered(this.#runner(t).childHeld(this.#ref, this.#binding, t))) === true;
    });
  }

  load(id: unknown, code: unknown): Promise<string> {
    return guarded(this.#audit, 'loader.load', async () => {
      const key = check(z.string().min(1).max(LOADER_LIMITS.idLength).nullable(), id, 'id');
      const refs = check(CodeRefs, code, 'code');
      for (const ref of [...Object.values(refs.stubs), ...(refs.globalOutbound !== null && refs.globalOutbound !== 'inherit' ? [refs.globalOutbound] : [])])
        propsOf(ref);
      const token = key === null ? `anon:${randomUUID()}` : `id:${key}`;
      const { workerId, version, limits } = this.#parent;
      const parent: RemoteParent = { ref: this.#ref, workerId, version, limits };
      // The loaded cordon sees export names, never props: those stay in the link, here.
      const strip = (ref: Ref): Ref => ({ exportName: ref.exportName, props: null });
      const seen = {
        ...(code as object),
        stubs: Object.fromEntries(Object.entries(refs.stubs).map(([name, ref]) => [name, strip(ref)])),
        globalOutbound: refs.globalOutbound === null || refs.globalOutbound === 'inherit' ? refs.globalOutbound : strip(refs.globalOutbound),
      };
      const link = this.#wrap(new ParentLink(this.#deps, this.#parent, refs, this.#fetch, this.#audit, `sandbox:${this.#cordon}`));
      await answered(this.#runner(token).loadChild(parent, this.#binding, token, seen, link));
      return token;
    });
  }

  connect(target: unknown, caller: unknown): Promise<RpcPipe> {
    return guarded(this.#audit, 'loader.connect', () => {
      const json = check(z.string().max(2 * LOADER_LIMITS.envBytes), target, 'target');
      let parsed: z.infer<typeof Target>;
      try {
        parsed = Target.parse(JSON.parse(json));
      } catch {
        throw new CordonError('malformed Dynamic Worker target', { status: 400, refusal: true });
      }
      if (parsed[0] !== this.#binding) throw new CordonError('malformed Dynamic Worker target', { status: 400, refusal: true });
      const runner = this.#runner(parsed[1]);
      return relay(this.#deps, this.#parent.workerId, caller, (end) => answered(runner.serveChild(this.#ref, json, end)));
    });
  }
}
