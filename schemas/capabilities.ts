/**
 * Capabilities the supervisor grants a worker (through the sandbox that runs it), each scoped to
 * exactly that worker's own resources. The sandbox never touches the files behind them.
 */

export type SqlValue = string | number | null | Uint8Array;

export interface SqlResult {
  columnNames: string[];
  rows: SqlValue[][];
  rowsRead: number;
  rowsWritten: number;
}

/**
 * One worker's SQLite database (Durable Object storage API: sql.exec, transactionSync, KV). Every
 * method takes, after its own arguments, `timeLeftMs`: how long the worker has left before its
 * wall-time limit. The sandbox sets it (never the worker's code); the supervisor caps it at the
 * worker's wall-time limit, uses that cap when it is absent, and interrupts a call still running
 * when it runs out.
 */
export interface StorageApi {
  exec(query: string, bindings: SqlValue[], timeLeftMs?: number): Promise<SqlResult>;
  databaseSize(timeLeftMs?: number): Promise<number>;
  begin(timeLeftMs?: number): Promise<void>;
  commit(timeLeftMs?: number): Promise<void>;
  rollback(timeLeftMs?: number): Promise<void>;
  kvGet(key: string, timeLeftMs?: number): Promise<Uint8Array | null>;
  kvPut(key: string, value: Uint8Array, timeLeftMs?: number): Promise<void>;
  kvDelete(key: string, timeLeftMs?: number): Promise<boolean>;
  kvList(prefix: string, limit: number, timeLeftMs?: number): Promise<[string, Uint8Array][]>;
  /** Keys in [start, end) with `prefix`, ascending or descending, at most `limit` (the Durable Object list() options). */
  kvScan(start: string | null, end: string | null, prefix: string, reverse: boolean, limit: number, timeLeftMs?: number): Promise<[string, Uint8Array][]>;
  /** Every table, view and KV entry, atomically. */
  deleteAll(timeLeftMs?: number): Promise<void>;
}

export interface DirectoryEntry {
  name: string;
  type: 'file' | 'directory';
}

export interface DirectoryStat {
  type: 'file' | 'directory';
  size: number;
  modified: number;
}

/** One worker's private directory, or a subdirectory of it. */
export interface DirectoryApi {
  list(path?: string): Promise<DirectoryEntry[]>;
  read(path: string): Promise<Uint8Array>;
  write(path: string, data: Uint8Array): Promise<void>;
  remove(path: string): Promise<boolean>;
  stat(path: string): Promise<DirectoryStat | null>;
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  directory(path: string): Promise<DirectoryApi>;
}

export interface FetchRequest {
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  redirect: 'follow' | 'manual' | 'error';
}

export interface FetchResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  /** The body when it travels whole; null when it streams (`stream`) or there is none. */
  body: Uint8Array | null;
  /** A body longer than egress returns whole, or of unknown length (an event stream), as the origin sends it. */
  stream?: ReadableStream<Uint8Array>;
  url: string;
  redirected: boolean;
}

/** `connect()`'s options (cloudflare:sockets), checked in the isolate and again in egress. */
export interface SocketOptions {
  secureTransport: 'off' | 'on' | 'starttls';
  allowHalfOpen: boolean;
}

/** An open socket as egress hands it out: the bytes it receives, as they arrive, and the socket to write to and close. */
export interface OpenedSocket {
  stream: ReadableStream<Uint8Array>;
  socket: SocketApi;
  /** `host:port` connected to (egress's own address is not handed out). */
  remoteAddress: string;
  /** Over TLS: what egress saw of the peer's certificate, as data (node:tls's getPeerCertificate reads it). */
  peerCertificate?: PeerCertificate;
}

/** The fields of Node's getPeerCertificate() egress hands on: strings only, each bounded (PEER_FIELD_MAX). */
export interface PeerCertificate {
  subject: Record<string, string>;
  issuer: Record<string, string>;
  subjectaltname: string;
  valid_from: string;
  valid_to: string;
  fingerprint256: string;
  serialNumber: string;
}
export const PEER_FIELD_MAX = 1024;
/**
 * In the isolate, cloudflare:sockets' `opened` info carries it under `Symbol.for(PEER_CERTIFICATE_KEY)`
 * (not a key workerd's info has, so JSON and Object.keys stay workerd's).
 */
export const PEER_CERTIFICATE_KEY = 'cordon.peerCertificate';

/** One socket of one worker, in egress. */
export interface SocketApi {
  /** Resolves once the bytes are handed to the kernel (the worker's writes wait for it: backpressure). */
  write(data: Uint8Array): Promise<void>;
  /** Half-close: the worker has nothing more to send. */
  end(): Promise<void>;
  close(): Promise<void>;
  /** `secureTransport: 'starttls'` only, once: TLS over this connection; this socket is done, the returned one carries on. */
  startTls(expectedServerHostname: string | null): Promise<OpenedSocket>;
}

/** Outbound HTTP and sockets for one worker, through egress, under that worker's identity and policy. */
export interface FetcherApi {
  fetch(request: FetchRequest): Promise<FetchResponse>;
  connect(target: { hostname: string; port: number }, options: SocketOptions): Promise<OpenedSocket>;
}

/** The Cache API of one worker (`caches.default`, `caches.open(name)`): its tenant's partitions of the egress cache. */
export interface CacheApi {
  match(
    cache: string,
    url: string,
    headers: [string, string][],
  ): Promise<{ status: number; statusText: string; headers: [string, string][]; body: Uint8Array } | null>;
  /** Whether the response was stored (RFC 9111 storable as a shared cache). */
  put(
    cache: string,
    url: string,
    headers: [string, string][],
    response: { status: number; statusText: string; headers: [string, string][]; body: Uint8Array },
  ): Promise<boolean>;
  delete(cache: string, url: string): Promise<boolean>;
}
export const CACHE_HANDLE = '$cache';
export const CACHE_METHODS = ['match', 'put', 'delete'] as const satisfies readonly (keyof CacheApi)[];

/** The handle the isolate uses for its fetch capability (not a valid binding name, so it never clashes). */
export const FETCH_HANDLE = '$fetch';

/** The methods a sandbox may forward for each kind of capability (anything else is refused before it leaves). */
export const STORAGE_METHODS = [
  'exec',
  'databaseSize',
  'begin',
  'commit',
  'rollback',
  'kvGet',
  'kvPut',
  'kvDelete',
  'kvList',
  'kvScan',
  'deleteAll',
] as const satisfies readonly (keyof StorageApi)[];
export type StorageMethod = (typeof STORAGE_METHODS)[number];
/** How many arguments each storage method takes before its `timeLeftMs`. */
export const STORAGE_ARITY: Record<StorageMethod, number> = {
  exec: 2,
  databaseSize: 0,
  begin: 0,
  commit: 0,
  rollback: 0,
  kvGet: 1,
  kvPut: 2,
  kvDelete: 1,
  kvList: 2,
  kvScan: 5,
  deleteAll: 0,
};
/** A socket the isolate opened is named by a handle starting so (its `$fetch` capability's child). */
export const SOCKET_HANDLE_PREFIX = '$socket:';
/** What the isolate may call on a socket it opened (a handle of its own, like a subdirectory's). */
export const SOCKET_METHODS = ['write', 'end', 'close', 'startTls'] as const satisfies readonly (keyof SocketApi)[];
export const DIRECTORY_METHODS = ['list', 'read', 'write', 'remove', 'stat', 'mkdir', 'rename', 'directory'] as const satisfies readonly (keyof DirectoryApi)[];
export const FETCH_METHODS = ['fetch', 'connect'] as const satisfies readonly (keyof FetcherApi)[];
