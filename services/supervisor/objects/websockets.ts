/**
 * WebSockets on Durable Objects, kept by the supervisor apart from any instance — the hibernation API.
 * An object's `ctx.acceptWebSocket(server, tags)` (or `server.accept()`) registers a socket here; the
 * worker's 101 joins it to the browser's end ingress holds (`attach`). From then on each message or
 * close from the browser is delivered as a `websocket` call through the object's lease, so it reaches
 * the one live instance — made anew if the object was evicted while idle — and only the lease holder;
 * what the object sends goes through its sockets capability, fenced like its storage. Tags,
 * attachments and the auto-response live here, so they survive the instance (docs/durable-objects.md,
 * "WebSockets").
 */
import { randomBytes } from 'node:crypto';
import { RpcTarget, type RpcStub } from 'capnweb';
import { z } from 'zod';
import { check } from '../../../lib/rpc/validate.ts';
import { CordonError } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/log.ts';
import { BatchQueue } from '../../../lib/send-queue.ts';
import { guarded, type Audit } from '../guarded.ts';
import type { BrowserSocket, WorkerSocketApi } from '../../../schemas/http.ts';
import {
  MAX_ATTACHMENT_BYTES,
  MAX_AUTO_RESPONSE_BYTES,
  MAX_SOCKET_TAGS,
  MAX_TAG_LENGTH,
  SocketId,
  type ObjectSocketEvent,
  type ObjectSocketInfo,
  type ObjectSocketsApi,
} from '../../../schemas/durable-objects.ts';
import { MAX_SEND_BATCH, MAX_SEND_BATCH_BYTES } from '../../../schemas/object-socket-batches.ts';

/** The largest message either way, as ingress's (services/ingress/websockets.ts). */
const MAX_MESSAGE = 1024 * 1024;
/** What an object may have sent to one socket that the client has not taken yet, before the socket is closed. */
const MAX_UNSENT = 16 * 1024 * 1024;
/** Calls on their way to ingress at once, per socket (each carries what the object sent it in a tick, bounded as its `ws.send` batches are). */
const MAX_SENDING = 32;
/** An accepted socket whose 101 never reached a browser is closed after this long (ObjectSocketsDeps.pendingMs). */
const PENDING_MS = 30_000;
/** Sockets of one object waiting for their 101 at once, and what may be sent to one of them meanwhile (as a worker's WebSocketPairs). */
const MAX_PENDING = 64;
const MAX_EARLY = 1024 * 1024;
/** What all of one tenant's objects may have sent that clients have not taken yet: the supervisor's memory is not theirs to fill. */
const MAX_TENANT_UNSENT = 256 * 1024 * 1024;
/** Longest event timeout an object may set (Cloudflare: 7 days). */
const MAX_EVENT_TIMEOUT_MS = 7 * 24 * 3600 * 1000;

const Tags = z.array(z.string().min(1).max(MAX_TAG_LENGTH)).max(MAX_SOCKET_TAGS);
const Data = z.union([z.string(), z.instanceof(Uint8Array)]);
const Code = z.number().int().min(1000).max(4999);
const Reason = z.string().max(123);
const Attachment = z.string().max(MAX_ATTACHMENT_BYTES).nullable();
const AutoText = z.string().min(1).max(MAX_AUTO_RESPONSE_BYTES).nullable();
/** A batch of sends: ids are checked one by one, in order, as each is sent (`own`). */
const Batch = z
  .array(z.tuple([z.unknown(), z.unknown()]))
  .min(1)
  .max(MAX_SEND_BATCH);

interface Socket {
  readonly sid: string;
  /** `<tenant>/<worker>:<class>:<id>`, the object it belongs to. */
  readonly key: string;
  readonly workerId: string;
  readonly className: string;
  readonly hibernatable: boolean;
  readonly createdAt: number;
  tags: string[];
  attachment: string | null;
  autoResponseAt: number | null;
  browser: RpcStub<BrowserSocket> | undefined;
  /** What the object sent before the browser's end was attached, then the queue to it. */
  out: BatchQueue<string | Uint8Array> | undefined;
  early: (string | Uint8Array)[];
  unsent: number;
  closing: [number, string] | undefined;
}

interface ObjectState {
  sockets: Set<string>;
  /** Of them, those whose 101 has not reached a browser yet. */
  pending: number;
  auto: [string, string] | null;
  eventTimeoutMs: number | null;
}

export interface ObjectSocketsDeps {
  /** Deliver one event to the object through its lease; resolves with the call's answer ('!' starts a thrown error). */
  deliver(key: string, event: ObjectSocketEvent, timeoutMs: number | null): Promise<string>;
  perObject: number;
  perTenant: number;
  log: Logger;
  /** How long an accepted socket may wait for its 101 (30 s; tests shorten it). */
  pendingMs?: number;
}

const sizeOf = (data: string | Uint8Array) => (typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength);

function refused(message: string): CordonError {
  return new CordonError(message, { status: 403, refusal: true });
}

export class ObjectSockets {
  readonly #deps: ObjectSocketsDeps;
  readonly #sockets = new Map<string, Socket>();
  readonly #objects = new Map<string, ObjectState>();
  readonly #perTenant = new Map<string, number>();
  /** Bytes each tenant's objects have sent that are not yet handed to ingress. */
  readonly #unsent = new Map<string, number>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(deps: ObjectSocketsDeps) {
    this.#deps = deps;
    const pendingMs = deps.pendingMs ?? PENDING_MS;
    this.#sweeper = setInterval(() => this.#sweepPending(pendingMs), Math.min(5_000, pendingMs)).unref();
  }

  /** The sockets capability of object `key` for the holder of one lease; `fenced` throws once that lease is no longer current. */
  forObject(key: string, workerId: string, className: string, fenced: () => void, audit: Audit): ObjectSocketsApi {
    return new ObjectSocketsCap(this, key, workerId, className, fenced, audit);
  }

  /** Open sockets of object `key` (diagnostics, `objects list`). */
  count(key: string): number {
    return this.#objects.get(key)?.sockets.size ?? 0;
  }

  #object(key: string): ObjectState {
    let o = this.#objects.get(key);
    if (!o) this.#objects.set(key, (o = { sockets: new Set(), pending: 0, auto: null, eventTimeoutMs: null }));
    return o;
  }

  /** The socket `sid` if it is object `key`'s; a socket of another object (or none) is refused alike. */
  own(key: string, sidArg: unknown): Socket {
    const sid = check(SocketId, sidArg, 'WebSocket id');
    const s = this.#sockets.get(sid);
    if (!s || s.key !== key) throw refused('no such WebSocket on this Durable Object (it closed, or it belongs to another object)');
    return s;
  }

  accept(key: string, workerId: string, className: string, tagsArg: unknown, hibernatableArg: unknown): string {
    const tags = check(Tags, tagsArg, 'tags');
    const hibernatable = check(z.boolean(), hibernatableArg, 'hibernatable');
    const o = this.#object(key);
    if (o.sockets.size >= this.#deps.perObject)
      throw new CordonError(`this Durable Object holds its limit of ${this.#deps.perObject} WebSockets; close some first`, { status: 429 });
    if (o.pending >= MAX_PENDING)
      throw new CordonError(`${MAX_PENDING} WebSockets of this Durable Object are waiting for their 101 response; return those first`, { status: 429 });
    const tenant = workerId.split('/')[0]!;
    const held = this.#perTenant.get(tenant) ?? 0;
    if (held >= this.#deps.perTenant)
      throw new CordonError(`this tenant's Durable Objects hold their limit of ${this.#deps.perTenant} WebSockets; close some first`, { status: 429 });
    const sid = randomBytes(16).toString('hex');
    this.#sockets.set(sid, {
      sid,
      key,
      workerId,
      className,
      hibernatable,
      createdAt: Date.now(),
      tags,
      attachment: null,
      autoResponseAt: null,
      browser: undefined,
      out: undefined,
      early: [],
      unsent: 0,
      closing: undefined,
    });
    o.sockets.add(sid);
    o.pending++;
    this.#perTenant.set(tenant, held + 1);
    return sid;
  }

  /** The object sends: to the browser, in order; before the 101 is out it waits (bounded); a client that does not read is closed. */
  send(s: Socket, dataArg: unknown): void {
    const data = check(Data, dataArg, 'message');
    if (sizeOf(data) > MAX_MESSAGE) throw new CordonError(`a WebSocket message is at most ${MAX_MESSAGE} bytes`, { status: 413 });
    if (s.closing) throw new CordonError('the WebSocket is closing: nothing more can be sent on it', { status: 400 });
    const size = sizeOf(data);
    if (!s.out && s.unsent + size > MAX_EARLY)
      throw new CordonError(`at most ${MAX_EARLY} bytes may be sent on a WebSocket before its 101 response is out`, { status: 413 });
    const tenant = tenantOf(s);
    if (s.unsent + size > MAX_UNSENT || (this.#unsent.get(tenant) ?? 0) + size > MAX_TENANT_UNSENT) {
      // Closed now, not after what it owes (it would never get there).
      s.out?.clear();
      s.closing = [1011, 'the client does not read fast enough'];
      if (s.browser) return this.#shut(s);
      void this.#ended(s, ...s.closing, false);
      return;
    }
    this.#account(s, size);
    if (s.out) s.out.push(data);
    else s.early.push(data);
  }

  /** `bytes` more (or fewer) of `s` wait to be handed to ingress. */
  #account(s: Socket, bytes: number): void {
    s.unsent += bytes;
    const tenant = tenantOf(s);
    const total = (this.#unsent.get(tenant) ?? 0) + bytes;
    if (total > 0) this.#unsent.set(tenant, total);
    else this.#unsent.delete(tenant);
  }

  /** The object closes: after what it sent. The client's close that answers it is delivered as any close (as on workerd). */
  close(s: Socket, code: number, reason: string): void {
    if (s.closing) return;
    s.closing = [code, reason];
    if (!s.browser) return this.#forget(s);
    if (s.out!.size === 0) this.#shut(s);
  }

  #shut(s: Socket): void {
    void s.browser!.close(...s.closing!).catch(() => {});
  }

  list(key: string, tag: string | null): ObjectSocketInfo[] {
    const out: ObjectSocketInfo[] = [];
    for (const sid of this.#objects.get(key)?.sockets ?? []) {
      const s = this.#sockets.get(sid)!;
      // As workerd's: a socket accepted but whose 101 is not out yet is listed too (what it is sent waits).
      if (s.hibernatable && !s.closing && (tag === null || s.tags.includes(tag))) out.push(info(s));
    }
    return out;
  }

  setAttachment(s: Socket, attachmentArg: unknown): void {
    const a = check(Attachment, attachmentArg, 'attachment');
    if (a !== null && Buffer.byteLength(a) > MAX_ATTACHMENT_BYTES)
      throw new CordonError(`a WebSocket attachment is at most ${MAX_ATTACHMENT_BYTES} bytes`, { status: 413 });
    s.attachment = a;
  }

  setAutoResponse(key: string, reqArg: unknown, resArg: unknown): void {
    const req = check(AutoText, reqArg, 'auto-response request');
    const res = check(AutoText, resArg, 'auto-response response');
    this.#object(key).auto = req === null || res === null ? null : [req, res];
  }

  getAutoResponse(key: string): [string, string] | null {
    return this.#objects.get(key)?.auto ?? null;
  }

  setEventTimeout(key: string, msArg: unknown): void {
    this.#object(key).eventTimeoutMs = check(z.number().int().min(1).max(MAX_EVENT_TIMEOUT_MS).nullable(), msArg, 'event timeout');
  }

  getEventTimeout(key: string): number | null {
    return this.#objects.get(key)?.eventTimeoutMs ?? null;
  }

  /**
   * A worker's 101 carried socket `sid`: join it to the browser's end. Only a socket of an object of
   * this worker and class, not yet joined to any browser, may be; anything else is refused alike.
   */
  attach(workerId: string, className: string, sidArg: unknown, browserArg: unknown): WorkerSocketApi {
    const sid = check(SocketId, sidArg, 'WebSocket id');
    if (typeof (browserArg as { dup?: unknown } | null)?.dup !== 'function') throw new TypeError("the browser's end must be a capability");
    const s = this.#sockets.get(sid);
    if (!s || s.workerId !== workerId || s.className !== className || s.browser || s.closing)
      throw refused('no such WebSocket to attach (it belongs to another object or worker, was attached already, or closed)');
    const browser = (browserArg as RpcStub<BrowserSocket>).dup();
    s.browser = browser;
    s.out = new BatchQueue<string | Uint8Array>(
      { limit: MAX_SENDING, maxItems: MAX_SEND_BATCH, maxBytes: MAX_SEND_BATCH_BYTES, sizeOf },
      (messages) => browser.sendMany(messages),
      (sent) => {
        if (!this.#sockets.has(s.sid)) return; // forgotten: its bytes were given back then
        this.#account(s, -sent.reduce((n, data) => n + sizeOf(data), 0));
        if (s.closing && s.out!.size === 0) this.#shut(s);
      },
    );
    const o = this.#objects.get(s.key);
    if (o) o.pending--;
    for (const data of s.early.splice(0)) s.out.push(data);
    browser.onRpcBroken(() => this.#ended(s, 1006, 'the connection to the client was lost', false));
    return new SocketEnd(this, s);
  }

  /** A message from the browser: answered here when it is the auto-response's request, else delivered to the object. */
  async message(s: Socket, data: string | Uint8Array): Promise<void> {
    if (s.closing || !this.#sockets.has(s.sid)) return;
    const o = this.#objects.get(s.key);
    if (s.hibernatable && o?.auto && typeof data === 'string' && data === o.auto[0]) {
      s.autoResponseAt = Date.now();
      s.out?.push(o.auto[1]);
      return;
    }
    const event: ObjectSocketEvent =
      typeof data === 'string'
        ? { type: 'message', socket: info(s), hibernatable: s.hibernatable, data }
        : { type: 'message', socket: info(s), hibernatable: s.hibernatable, data: Buffer.from(data).toString('base64'), binary: true };
    await this.#deliver(s, event);
  }

  /** The socket ended (its browser's end closed, its connection went, or the supervisor closed it unsent): it is forgotten and the object hears of it once. */
  async #ended(s: Socket, code: number, reason: string, wasClean: boolean): Promise<void> {
    if (!this.#sockets.has(s.sid)) return;
    this.#forget(s);
    await this.#deliver(s, { type: 'close', socket: info(s), hibernatable: s.hibernatable, code, reason, wasClean });
  }

  closedByBrowser(s: Socket, code: unknown, reason: unknown): Promise<void> {
    const c = typeof code === 'number' ? code : 1005;
    return this.#ended(s, c, typeof reason === 'string' ? reason.slice(0, 123) : '', c !== 1006);
  }

  async #deliver(s: Socket, event: ObjectSocketEvent): Promise<void> {
    try {
      const out = await this.#deps.deliver(s.key, event, this.#objects.get(s.key)?.eventTimeoutMs ?? null);
      if (out.startsWith('!')) this.#deps.log.debug('a Durable Object WebSocket handler threw', { object: s.key, event: event.type });
    } catch (e) {
      // Nowhere to deliver (no live sandbox, the worker is gone): the socket cannot be served.
      this.#deps.log.warn('a WebSocket event could not be delivered to its Durable Object', { object: s.key, error: (e as Error).message });
      if (event.type === 'message' && this.#sockets.has(s.sid)) this.close(s, 1011, 'the Durable Object could not be reached');
    }
  }

  /**
   * The object is deleted (or its worker, or the facet): every socket of it closes now, what it sent and
   * the client has not taken is dropped, and nothing more is delivered — an event through a lease would
   * make the deleted object again.
   */
  dropObject(key: string, code = 1001, reason = 'the Durable Object was deleted'): void {
    for (const sid of [...(this.#objects.get(key)?.sockets ?? [])]) {
      const s = this.#sockets.get(sid);
      if (!s) continue;
      s.closing ??= [code, reason];
      s.out?.clear();
      if (s.browser) this.#shut(s);
      this.#forget(s);
    }
    this.#objects.delete(key);
  }

  #forget(s: Socket): void {
    if (!this.#sockets.delete(s.sid)) return;
    const o = this.#objects.get(s.key);
    o?.sockets.delete(s.sid);
    if (o && !s.browser) o.pending--;
    this.#account(s, -s.unsent);
    if (o && o.sockets.size === 0 && o.auto === null && o.eventTimeoutMs === null) this.#objects.delete(s.key);
    const tenant = tenantOf(s);
    const held = (this.#perTenant.get(tenant) ?? 1) - 1;
    if (held > 0) this.#perTenant.set(tenant, held);
    else this.#perTenant.delete(tenant);
    s.early = [];
    s.out?.clear();
    s.browser?.[Symbol.dispose]();
  }

  /**
   * Sockets whose 101 never reached a browser close, and their objects hear it once, as of any socket
   * that goes: an object (and the sandbox keeping a loaded Worker's code for a facet's sockets) holds
   * nothing for a socket that can never be used.
   */
  #sweepPending(pendingMs: number): void {
    const stale = Date.now() - pendingMs;
    for (const s of [...this.#sockets.values()])
      if (!s.browser && s.createdAt < stale) void this.#ended(s, 1006, 'the WebSocket never reached a client: its 101 response was not returned', false);
  }

  stop(): void {
    clearInterval(this.#sweeper);
    for (const s of [...this.#sockets.values()]) this.close(s, 1001, 'the supervisor is stopping');
  }
}

function tenantOf(s: Socket): string {
  return s.workerId.split('/')[0]!;
}

function info(s: Socket): ObjectSocketInfo {
  return { sid: s.sid, tags: s.tags, attachment: s.attachment, autoResponseAt: s.autoResponseAt };
}

/** The socket's end for ingress (through the caller's sandbox): what the browser sends or does. */
class SocketEnd extends RpcTarget implements WorkerSocketApi {
  readonly #sockets: ObjectSockets;
  readonly #socket: Socket;
  constructor(sockets: ObjectSockets, socket: Socket) {
    super();
    this.#sockets = sockets;
    this.#socket = socket;
  }
  message(data: unknown): Promise<void> {
    return this.#sockets.message(this.#socket, check(Data, data, 'message'));
  }
  close(code: unknown, reason: unknown): Promise<void> {
    return this.#sockets.closedByBrowser(this.#socket, code, reason);
  }
}

/** One object's sockets for the holder of one lease: every call checks the fence first, and reaches this object's sockets only. */
class ObjectSocketsCap extends RpcTarget implements ObjectSocketsApi {
  readonly #s: ObjectSockets;
  readonly #key: string;
  readonly #workerId: string;
  readonly #className: string;
  readonly #fenced: () => void;
  readonly #audit: Audit;
  constructor(sockets: ObjectSockets, key: string, workerId: string, className: string, fenced: () => void, audit: Audit) {
    super();
    this.#s = sockets;
    this.#key = key;
    this.#workerId = workerId;
    this.#className = className;
    this.#fenced = fenced;
    this.#audit = audit;
  }
  /** Refusals (a stale lease, another object's socket) are audited; the tenant hears the message only. */
  #do<T>(action: string, fn: () => T): Promise<T> {
    return guarded(this.#audit, `objects.sockets.${action}`, () => {
      this.#fenced();
      return fn();
    });
  }
  accept(tags: unknown, hibernatable: unknown): Promise<string> {
    return this.#do('accept', () => this.#s.accept(this.#key, this.#workerId, this.#className, tags, hibernatable));
  }
  send(batch: unknown): Promise<void> {
    return this.#do('send', () => {
      for (const [sid, data] of check(Batch, batch, 'messages')) this.#s.send(this.#s.own(this.#key, sid), data);
    });
  }
  close(sid: unknown, code: unknown, reason: unknown): Promise<void> {
    return this.#do('close', () => this.#s.close(this.#s.own(this.#key, sid), check(Code, code, 'close code'), check(Reason, reason, 'close reason')));
  }
  list(tag: unknown): Promise<ObjectSocketInfo[]> {
    return this.#do('list', () => this.#s.list(this.#key, check(z.string().max(MAX_TAG_LENGTH).nullable(), tag, 'tag')));
  }
  setAttachment(sid: unknown, attachment: unknown): Promise<void> {
    return this.#do('setAttachment', () => this.#s.setAttachment(this.#s.own(this.#key, sid), attachment));
  }
  setAutoResponse(request: unknown, response: unknown): Promise<void> {
    return this.#do('setAutoResponse', () => this.#s.setAutoResponse(this.#key, request, response));
  }
  getAutoResponse(): Promise<[string, string] | null> {
    return this.#do('getAutoResponse', () => this.#s.getAutoResponse(this.#key));
  }
  setEventTimeout(ms: unknown): Promise<void> {
    return this.#do('setEventTimeout', () => this.#s.setEventTimeout(this.#key, ms));
  }
  getEventTimeout(): Promise<number | null> {
    return this.#do('getEventTimeout', () => this.#s.getEventTimeout(this.#key));
  }
}
