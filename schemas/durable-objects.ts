/**
 * Durable Objects across service boundaries: the binding a worker declares (`durable_objects.bindings`
 * in wrangler's config), what its `env.<BINDING>` may ask the supervisor (DurableObjectNamespaceApi),
 * and how the supervisor has the sandbox that holds an object's lease run a call on it (ObjectHost).
 *
 * An object is named by (tenant, worker, class, id); its id is 64 hex digits minted by the supervisor
 * for exactly one namespace (docs/durable-objects.md, "Ids"), so an id is the whole name a tenant ever
 * handles and cannot be turned into another namespace's.
 */
import { z } from 'zod';
import type { StorageApi } from './capabilities.ts';
import type { BrowserSocket, WorkerSocketApi } from './http.ts';
import type { RpcPipe } from './service-bindings.ts';
import { ClassName } from './workflows.ts';

/** `env.<name>` for the objects of class `className` of this same worker. */
export const DurableObjectBinding = z
  .object({
    type: z.literal('durable_object'),
    name: z.string().regex(/^[A-Z_][A-Z0-9_]{0,63}$/, 'binding names are upper-case letters, digits and _ (e.g. ROOM)'),
    className: ClassName,
  })
  .strict();
export type DurableObjectBinding = z.infer<typeof DurableObjectBinding>;

/** An object id as Cloudflare prints it: 64 lower-case hex digits. */
export const ObjectIdHex = z.string().regex(/^[0-9a-f]{64}$/, 'a Durable Object id is 64 hex digits');
/** A name for idFromName/getByName (Cloudflare sets no documented limit; this one keeps ids and logs bounded). */
export const ObjectName = z.string().max(2048);

/** What a namespace hands back for an id: the id, and the name when it was made from one. */
export interface MintedId {
  id: string;
  name?: string;
}

/**
 * The kinds of call an object receives: fetch(request), an RPC method, or its alarm. A call's answer is
 * the encoded result, or '!' followed by the encoded error it threw; an alarm's payload is plain JSON
 * `{ retryCount, isRetry }`; a `websocket` call's is an ObjectSocketEvent (JSON), from the supervisor only.
 */
export type ObjectCallKind = 'fetch' | 'rpc' | 'alarm' | 'websocket';

/**
 * One worker's `env.<BINDING>` for one class: ids of this namespace only, and calls on its objects.
 * `payload` and the result are the isolate's RPC value encoding (bootstrap/tagged-values.ts), at most
 * MAX_OBJECT_PAYLOAD. `timeLeftMs` is set by the sandbox, as for storage calls.
 */
export interface DurableObjectNamespaceApi {
  /** newUniqueId (`kind` unique), idFromName (`name`), idFromString (`string`: refused unless minted for this namespace). */
  mint(kind: 'unique' | 'name' | 'string', arg: string | null): Promise<MintedId>;
  call(id: string, name: string | null, kind: ObjectCallKind, method: string, payload: string, timeLeftMs?: number): Promise<string>;
  /**
   * The sandbox (never the isolate) joins socket `sid`, which an object of this namespace answered a
   * `fetch()` with, to the browser's end its worker's 101 went to; answers the socket's end for ingress.
   */
  attachSocket(sid: string, browser: BrowserSocket): Promise<WorkerSocketApi>;
  /**
   * A Workers RPC session to object `id` (made from `name`, when not null: checked): `caller` is the
   * calling isolate's end, the object's comes back (schemas/service-bindings.ts RpcPipe); the supervisor
   * relays without reading. A stub's RPC methods travel on it (docs/durable-objects.md, "Calls").
   */
  connect(id: string, name: string | null, caller: RpcPipe): Promise<RpcPipe>;
}
export const OBJECT_NAMESPACE_METHODS = ['mint', 'call'] as const satisfies readonly (keyof DurableObjectNamespaceApi)[];

/** An RPC argument list or result, as encoded, at most this long (the same bound as a workflow value). */
export const MAX_OBJECT_PAYLOAD = 1024 * 1024 * 8;

/** A stub's session target as the isolate names it: `[binding, id, name]` as JSON (bootstrap/durable-objects.ts). */
export const ObjectTarget = z.tuple([z.string().max(64), z.string().max(200), z.string().max(2048).nullable()]);

/**
 * The storage of one object, handed to the sandbox that holds the object's lease: its database
 * (the storage API) and its alarm, each call refused once the lease has moved on (the fence).
 */
export interface ObjectStorageApi extends StorageApi {
  getAlarm(timeLeftMs?: number): Promise<number | null>;
  setAlarm(time: number | null, timeLeftMs?: number): Promise<void>;
  deleteAll(timeLeftMs?: number): Promise<void>;
  /**
   * The storage of this object's facet `name` (its own database, under the same fence); refused past the depth
   * limit. `startup`: how its holder started it, so that an event of its WebSockets can start it again without
   * its parent's code (docs/durable-objects.md, "WebSockets").
   */
  facet(name: string, startup?: FacetStartup): Promise<ObjectStorageApi>;
  /** Wipe facet `name`'s database and those of its own facets. */
  deleteFacet(name: string): Promise<void>;
  /** Make facet `dst`'s databases (its own facets' too) a copy of `src`'s. */
  cloneFacet(src: string, dst: string): Promise<void>;
  /**
   * One call on facet `name` whose class is one of Dynamic Worker `token` of loader `binding`, loaded in the
   * worker's loaded cordon: the supervisor hands that cordon's process the facet's storage (this lease's,
   * that facet's only) and has it run the call there. Answers as ObjectHost.call.
   */
  facetIn(name: string, place: LoadedFacetPlace, facet: FacetIdentity, kind: ObjectCallKind, method: string, payload: string): Promise<string>;
  /** Facet `name`'s instance in the loaded cordon goes (aborted, or its parent's instance went): its storage there is revoked. */
  dropFacet(name: string): Promise<void>;
  /** The object's WebSockets, under the same lease. */
  sockets(): ObjectSocketsApi;
}

/** Where a facet's class is loaded: Worker `token` (`id:<id>` or `anon:<uuid>`) of the parent worker's loader `binding`. */
export interface LoadedFacetPlace {
  binding: string;
  token: string;
}
/** A facet as its instance sees itself: its class, and its `ctx.id` (its parent's hex, the name the parent gave). */
export interface FacetIdentity {
  className: string;
  id: string;
  name: string | null;
}

/** How a facet was started: its class (of this worker, or of Worker `token` of loader `binding`) and its `ctx.id`. */
export interface FacetStartup extends FacetIdentity {
  binding: string | null;
  token: string | null;
}
/** Where a facet's socket event goes: the facet `facet` of the object, started as `startup` when it is not live. */
export interface FacetRoute {
  facet: string;
  startup: FacetStartup;
}

/** workerd's limits (actor-state.c++): a facet name's length, and the depth of a facet tree, its root included. */
export const MAX_FACET_NAME_LENGTH = 256;
export const MAX_FACET_TREE_DEPTH = 4;
export const FacetName = z
  .string()
  .min(1, 'a facet name cannot be empty')
  .max(MAX_FACET_NAME_LENGTH, `a facet name is at most ${MAX_FACET_NAME_LENGTH} characters (workerd's limit)`);
export const OBJECT_STORAGE_EXTRA = ['getAlarm', 'setAlarm', 'deleteAll'] as const satisfies readonly (keyof ObjectStorageApi)[];

/** Which object a call is for, as the supervisor tells the holder. */
export interface ObjectAddress {
  /** The worker version the call runs in (its code key unlocks it in this sandbox's cordon). */
  codeKey: string;
  className: string;
  id: string;
  name: string | null;
  /** The lease's fencing token: higher for every new grant of this object. */
  fence: number;
}

/** What a sandbox offers the supervisor: it hosts objects of its cordon's workers. */
export interface ObjectHost {
  /** Run one call on the object; `storage` is its fenced storage (kept while the instance lives). */
  call(address: ObjectAddress, storage: ObjectStorageApi, kind: ObjectCallKind, method: string, payload: string): Promise<string>;
  /** Serve a Workers RPC session to the object (a stub's RPC methods); `storage` as for call(). */
  serve(address: ObjectAddress, storage: ObjectStorageApi, caller: RpcPipe): Promise<RpcPipe>;
  /** The supervisor's lease check: answers with the keys (`<workerId>:<class>:<id>`) of the objects this host still runs. */
  ping(): Promise<string[]>;
  /** The lease ended (the object was deleted, or moved): drop the instance, if any. */
  drop(key: string): Promise<void>;
}

/**
 * WebSockets on objects (docs/durable-objects.md, "WebSockets"). The supervisor keeps each accepted
 * socket — its tags, its attachment, the browser's end (held by ingress) — apart from any instance, so
 * an object can be evicted while its sockets stay open; every event is delivered as a `websocket` call
 * through the object's lease. A socket is named by a random id (`sid`) that only means something to
 * the object it belongs to and to the worker whose response carried it.
 */
export const SocketId = z.string().regex(/^[0-9a-f]{32}$/, 'a WebSocket id is 32 hex digits');
/** workerd's bounds: 10 tags a socket, 256 characters a tag, 16 KiB of attachment, 2,048 bytes of auto-request and -response. */
export const MAX_SOCKET_TAGS = 10;
export const MAX_TAG_LENGTH = 256;
export const MAX_ATTACHMENT_BYTES = 16 * 1024;
export const MAX_AUTO_RESPONSE_BYTES = 2048;

/** A socket as a (new) instance sees it: its id, its tags, its attachment (encoded), its auto-response time. */
export interface ObjectSocketInfo {
  sid: string;
  tags: string[];
  attachment: string | null;
  autoResponseAt: number | null;
}

/** What a `websocket` call carries (JSON): the event, for socket `socket`. */
export interface ObjectSocketEvent {
  type: 'message' | 'close' | 'error';
  /** A socket of one of the object's facets: the event is that facet's. */
  facet?: FacetRoute;
  socket: ObjectSocketInfo;
  hibernatable: boolean;
  /** message: the text, or base64 of the bytes when `binary`. */
  data?: string;
  binary?: boolean;
  code?: number;
  reason?: string;
  wasClean?: boolean;
}

/** One object's WebSockets, for the sandbox holding its lease: refused once the lease has moved on (the fence). */
export interface ObjectSocketsApi {
  /** A new socket of this object (`hibernatable`: ctx.acceptWebSocket; else server.accept()): its id, not yet joined to a browser. */
  accept(tags: string[], hibernatable: boolean): Promise<string>;
  /**
   * What the object sent in one tick, in order (`[sid, data]` each, at most MAX_SEND_BATCH): one call, not one
   * per message. Applied in order; the first that is refused stops the rest and is the call's error.
   */
  send(batch: [string, string | Uint8Array][]): Promise<void>;
  close(sid: string, code: number, reason: string): Promise<void>;
  /** The object's open hibernatable sockets, those with `tag` only when given. */
  list(tag: string | null): Promise<ObjectSocketInfo[]>;
  setAttachment(sid: string, attachment: string | null): Promise<void>;
  /** ctx.setWebSocketAutoResponse: a message equal to `request` is answered with `response` without waking the object; nulls clear it. */
  setAutoResponse(request: string | null, response: string | null): Promise<void>;
  getAutoResponse(): Promise<[string, string] | null>;
  /** ctx.setHibernatableWebSocketEventTimeout (ms; null: the worker's wall-time limit). */
  setEventTimeout(ms: number | null): Promise<void>;
  getEventTimeout(): Promise<number | null>;
}
export const OBJECT_SOCKETS_ARITY = {
  accept: 2,
  send: 1,
  close: 3,
  list: 1,
  setAttachment: 2,
  setAutoResponse: 2,
  getAutoResponse: 0,
  setEventTimeout: 1,
  getEventTimeout: 0,
} as const satisfies Record<keyof ObjectSocketsApi, number>;
