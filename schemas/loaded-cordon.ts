/**
 * Dynamic Workers in a stricter cordon than their parent's (docs/dynamic-workers.md, "A stricter
 * cordon for loaded Workers"): the parent's `worker_loaders` binding is then a supervisor capability
 * (LoaderApi) instead of being served by the parent's own sandbox process, and the loaded Worker runs
 * in a sandbox process of the loaded cordon, which reaches back into its parent only through a
 * ParentLinkApi the supervisor made for that one load. Props of the parent's entrypoints stay in the
 * supervisor; the loaded cordon's process sees export names only.
 */
import type { RpcPipe } from './service-bindings.ts';
import type { FetchResponse, OpenedSocket, SocketOptions } from './capabilities.ts';
import type { FacetIdentity, ObjectCallKind, ObjectStorageApi } from './durable-objects.ts';
import type { LogEntry } from './services.ts';

/** Facets of loaded classes one object may have started in its loaded cordon at once (each holds a capability there). */
export const MAX_LOADED_FACETS = 1024;

/** What the parent's sandbox has for a loader binding when its loaded Workers run in another cordon. */
export interface LoaderApi {
  /** Whether the loaded cordon still holds Worker `token` (`id:<id>` or `anon:<uuid>`). */
  held(token: string): Promise<boolean>;
  /** Load `code` (the host's checked LoaderCode) under `id` (null: a Worker of its own); answers its token. */
  load(id: string | null, code: unknown): Promise<string>;
  /** A Workers RPC session to an entrypoint of a loaded Worker: `target` is JSON `[binding, token, entrypoint, props]`. */
  connect(target: string, caller: RpcPipe): Promise<RpcPipe>;
}
export const LOADER_METHODS = ['held', 'load'] as const satisfies readonly (keyof LoaderApi)[];

/** The parent as the loaded cordon's process knows it: never its code, vars, bindings or code key. */
export interface RemoteParent {
  /** `<workerId>@<version>`: the key the loaded Workers are held under. */
  ref: string;
  workerId: string;
  version: string;
  limits: { cpuMs: number; wallMs: number; memoryMb: number };
}

/** What a loaded Worker in the loaded cordon reaches of its parent: the stubs and the outbound its parent gave, for this parent only. */
export interface ParentLinkApi {
  /** A session into the parent's entrypoint behind env stub `name` (or the gateway, `$outbound`). */
  connect(name: string, caller: RpcPipe): Promise<RpcPipe>;
  /** `globalOutbound` inherited: a fetch as the parent's (egress, under the parent's identity and policy). */
  fetch(request: unknown): Promise<FetchResponse>;
  /** `globalOutbound` inherited: connect() (cloudflare:sockets) as the parent's, as fetch(). */
  openSocket(target: { hostname: string; port: number }, options: SocketOptions): Promise<OpenedSocket>;
  /** The loaded Worker broke a limit: a quarantine signal against the parent. */
  limitHit(kind: 'cpu' | 'memory'): Promise<void>;
  /** A Worker was loaded: counted for the parent. */
  created(): Promise<void>;
  /** Console output of the loaded Worker: the parent's log. */
  log(entries: LogEntry[]): Promise<void>;
}

/** What a sandbox process of the loaded cordon offers beside its WorkerRunner (the same capability): it hosts other cordons' loaded Workers. */
export interface LoadedWorkerHost {
  /** Load `code` as Worker `token` of `parent`'s `binding` (kept by id as in the parent's own process); `link` is its way back. */
  loadChild(parent: RemoteParent, binding: string, token: string, code: unknown, link: ParentLinkApi): Promise<void>;
  childHeld(parentRef: string, binding: string, token: string): Promise<boolean>;
  /** A session to an entrypoint of a held Worker: `target` as LoaderApi.connect's. */
  serveChild(parentRef: string, target: string, caller: RpcPipe): Promise<RpcPipe>;
  /**
   * One call on a facet (docs/durable-objects.md, "Facets") whose class is one of held Worker `token`'s:
   * `facet.key` names its instance here (the supervisor's choice); `storage` is that facet's, fenced by its
   * parent's lease and revoked by the supervisor when the lease or the facet ends.
   */
  childObjectCall(
    parentRef: string,
    binding: string,
    token: string,
    facet: FacetIdentity & { key: string },
    storage: ObjectStorageApi,
    call: { kind: ObjectCallKind; method: string; payload: string },
  ): Promise<string>;
  /** The facet instance `key` goes (its storage was revoked). */
  childObjectDrop(parentRef: string, binding: string, token: string, key: string): Promise<void>;
}
