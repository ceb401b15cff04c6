/**
 * The NATS transport (cluster mode). A session is a pair of subjects: a client picks a random
 * 128-bit session id, subscribes to `cordon.s.<sid>.s2c`, and asks a server of the service (queue
 * group `cordon.connect.<service>`, so instances share the load) to open it; the server subscribes to
 * `cordon.s.<sid>.c2s` and answers. From then on frames flow on those subjects.
 *
 * Replicas: a server started with an instance name also takes sessions for that one process on
 * `cordon.connect.<service>.<instance>`, and answers `cordon.who.<service>` with its name, so a client
 * can keep a session to each replica and spread calls over them (lib/replicas.ts). A name is only a
 * hint: whoever answers to it must still prove the service's key in the handshake.
 *
 * Frame: a 29-byte header, then payload bytes.
 *   type u8 ('D' data, 'B' binary data, 'H' heartbeat, 'X' close) | seq u32 | part u16 | parts u16 | total u32 | tag[16]
 * A close frame's payload is the reason, at most MAX_CLOSE_REASON bytes, so that a peer's pending
 * calls fail saying why (a revoked token, a quota), as a WebSocket's close reason does.
 * A message longer than the server's `max_payload` is split into `parts` data frames; `total` (the
 * whole message's length, in the first part) is checked against the limit before anything is kept.
 * Every frame carries the next sequence number of its direction. After the handshake both sides hold
 * a session key (from an ephemeral X25519 exchange, handshake.ts) and every frame is sealed with
 * ChaCha20-Poly1305: the payload encrypted, the header, direction and session id authenticated, the
 * nonce the direction and sequence number (unique per key; the session ends before a sequence number
 * could repeat). Another NATS user — a compromised sandbox holding its own NATS credentials — that
 * sniffs the subjects reads nothing of other sessions' requests and answers, and can neither inject
 * nor replay a frame: the channel closes instead. Before the peer has authenticated only data frames of a
 * handshake message's size pass (MAX_HANDSHAKE_MESSAGE, declared total included), so an
 * unauthenticated client cannot make a server assemble a large message. Heartbeats flow when a side is idle; silence beyond the session time-out closes the
 * channel so the dead peer's capabilities are released.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ChannelClosedError, Inbox, MAX_HANDSHAKE_MESSAGE, type BinaryChannel, type Channel } from './channel.ts';
import { FrameTooLargeError } from './frames.ts';
import { DEFAULT_QUOTAS } from './quotas.ts';
import type { KeyedChannel, AcceptOptions, ConnectOptions } from './index.ts';
import { accept, connect, type MeshSession } from './index.ts';
import type { RpcCompatible } from 'capnweb';

const HEADER = 29;
const TAG_OFFSET = 13;
const TAG = 16;
const AEAD = 'chacha20-poly1305';
/** The last sequence number a direction may use: a nonce must never repeat under one key. */
const LAST_SEQ = 0xffffffff;
const SID = /^[A-Za-z0-9_-]{22}$/;
const T_DATA = 0x44; // 'D'
const T_BINARY = 0x42; // 'B': a binary message (the HTTP fast path), only once frames are authenticated
const T_HEARTBEAT = 0x48; // 'H'
const T_CLOSE = 0x58; // 'X'
/** A close reason is a line for a log and an error message, no more (a WebSocket's is 123 bytes). */
export const MAX_CLOSE_REASON = 256;

export interface NatsChannelOptions {
  heartbeatMs?: number;
  sessionTimeoutMs?: number;
  connectTimeoutMs?: number;
}

const DEFAULTS = { heartbeatMs: 5000, sessionTimeoutMs: 15_000, connectTimeoutMs: 5000 };

/**
 * The mesh's timing (lib/mesh-nats.ts): a dead peer (a crashed sandbox) is noticed within seconds.
 * The supervisor's client endpoint listens with it too, so a client must heartbeat as often.
 */
export const MESH_SESSION_TIMING = { heartbeatMs: 1000, sessionTimeoutMs: 3000 };

export class NatsChannel implements KeyedChannel, BinaryChannel {
  readonly maxMessage: number;
  readonly description: string;
  readonly #nc: NatsConnection;
  readonly #sid: string;
  readonly #out: string;
  readonly #outDir: number;
  readonly #inDir: number;
  readonly #chunk: number;
  readonly #inbox = new Inbox();
  readonly #sub: Subscription;
  readonly #closeCallbacks: ((e: Error) => void)[] = [];
  readonly #timer: NodeJS.Timeout;
  readonly #opts: typeof DEFAULTS;
  #key: Buffer | undefined;
  #peerProven = false;
  #sendSeq = 0;
  #recvSeq = 0;
  #assembling: { binary: boolean; total: number; parts: number; chunks: Uint8Array[]; size: number } | undefined;
  #binary: ((message: Buffer) => void) | undefined;
  #lastSent = Date.now();
  #lastHeard = Date.now();
  #closeReason: Error | undefined;

  constructor(nc: NatsConnection, sid: string, side: 'client' | 'server', maxMessage: number, opts: NatsChannelOptions = {}) {
    this.#nc = nc;
    this.#sid = sid;
    this.#opts = { ...DEFAULTS, ...opts };
    this.maxMessage = maxMessage;
    this.description = `nats:${sid}`;
    const c2s = `cordon.s.${sid}.c2s`;
    const s2c = `cordon.s.${sid}.s2c`;
    this.#out = side === 'client' ? c2s : s2c;
    this.#outDir = side === 'client' ? 1 : 2;
    this.#inDir = side === 'client' ? 2 : 1;
    this.#chunk = Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - HEADER - 512);
    this.#sub = nc.subscribe(side === 'client' ? s2c : c2s, { callback: (err, msg) => (err ? this.close(err) : this.#receiveFrame(msg)) });
    this.#timer = setInterval(() => this.#tick(), Math.max(10, Math.min(this.#opts.heartbeatMs, this.#opts.sessionTimeoutMs / 3)));
    this.#timer.unref();
  }

  get closed(): boolean {
    return this.#closeReason !== undefined;
  }

  authenticated(): void {
    this.#peerProven = true;
  }

  useSessionKey(key: Buffer): void {
    this.#key = key;
  }

  send(message: string): void {
    if (this.#closeReason) throw this.#closeReason;
    const bytes = Buffer.from(message, 'utf8');
    if (bytes.length > this.maxMessage) throw new FrameTooLargeError(bytes.length, this.maxMessage);
    if (!this.#key && !this.#peerProven && bytes.length > MAX_HANDSHAKE_MESSAGE) throw new Error('message too large before the handshake completed');
    this.#sendParts(T_DATA, bytes);
  }

  sendBinary(message: Uint8Array | readonly Uint8Array[]): void {
    if (this.#closeReason) throw this.#closeReason;
    const bytes = message instanceof Uint8Array ? message : Buffer.concat(message);
    if (bytes.byteLength > this.maxMessage) throw new FrameTooLargeError(bytes.byteLength, this.maxMessage);
    if (!this.#key) throw new Error('binary messages go only once the session key is in use');
    this.#sendParts(T_BINARY, bytes);
  }

  onBinary(handler: (message: Buffer) => void): void {
    this.#binary = handler;
  }

  #sendParts(type: number, bytes: Uint8Array): void {
    const parts = Math.max(1, Math.ceil(bytes.length / this.#chunk));
    for (let p = 0; p < parts; p++) this.#sendFrame(type, p, parts, bytes.length, bytes.subarray(p * this.#chunk, (p + 1) * this.#chunk));
  }

  receive(): Promise<string> {
    return this.#inbox.receive();
  }

  close(reason: Error = new ChannelClosedError()): void {
    if (this.#closeReason) return;
    try {
      if (!this.#nc.isClosed()) this.#sendFrame(T_CLOSE, 0, 1, 0, reasonBytes(reason.message));
    } catch {
      // best effort
    }
    this.#closeReason = reason;
    clearInterval(this.#timer);
    this.#sub.unsubscribe();
    this.#inbox.fail(reason);
    for (const cb of this.#closeCallbacks.splice(0)) cb(reason);
  }

  onClose(callback: (reason: Error) => void): void {
    if (this.#closeReason) callback(this.#closeReason);
    else this.#closeCallbacks.push(callback);
  }

  #sendFrame(type: number, part: number, parts: number, total: number, payload: Uint8Array): void {
    const seq = this.#sendSeq;
    if (this.#key && seq === LAST_SEQ) throw new ChannelClosedError(`session ${this.#sid} has sent all the frames one key may seal; open a new one`);
    this.#sendSeq = (seq + 1) >>> 0;
    const frame = Buffer.alloc(HEADER + payload.length);
    frame[0] = type;
    frame.writeUInt32BE(seq, 1);
    frame.writeUInt16BE(part, 5);
    frame.writeUInt16BE(parts, 7);
    frame.writeUInt32BE(total, 9);
    if (this.#key) sealFrame(this.#key, this.#outDir, this.#sid, frame, payload);
    else frame.set(payload, HEADER);
    this.#nc.publish(this.#out, frame);
    this.#lastSent = Date.now();
  }

  /** The payload of a sealed frame, or an error if anything of it was altered or it was not sealed with this session's key. */
  #open(header: Buffer, sealed: Uint8Array, seq: number): Uint8Array {
    const decipher = createDecipheriv(AEAD, this.#key!, frameNonce(this.#inDir, seq), { authTagLength: TAG });
    decipher.setAAD(frameAad(this.#inDir, this.#sid, header), { plaintextLength: sealed.length });
    decipher.setAuthTag(header.subarray(TAG_OFFSET, HEADER));
    const payload = decipher.update(sealed);
    try {
      decipher.final();
    } catch {
      throw new Error('frame failed authentication');
    }
    return payload;
  }

  #receiveFrame(msg: Msg): void {
    if (this.#closeReason) return;
    try {
      const data = msg.data;
      if (data.length < HEADER) throw new Error('short frame');
      const header = Buffer.from(data.buffer, data.byteOffset, HEADER);
      const type = header[0]!;
      const seq = header.readUInt32BE(1);
      // The sequence is checked first: a frame out of sequence would be opened with another frame's nonce.
      if (seq !== this.#recvSeq) throw new Error(`frame out of sequence (got ${seq}, expected ${this.#recvSeq})`);
      let payload = data.subarray(HEADER);
      if (this.#key) payload = this.#open(header, payload, seq);
      else if (type !== T_DATA || (!this.#peerProven && header.readUInt32BE(9) > MAX_HANDSHAKE_MESSAGE))
        throw new Error('unexpected frame before the handshake completed');
      this.#recvSeq = (this.#recvSeq + 1) >>> 0;
      this.#lastHeard = Date.now();
      if (type === T_HEARTBEAT) return;
      if (type === T_CLOSE) {
        const why = new TextDecoder().decode(reasonBytes(new TextDecoder().decode(payload.subarray(0, MAX_CLOSE_REASON))));
        return this.close(new ChannelClosedError(`peer closed session ${this.#sid}${why ? `: ${why}` : ''}`));
      }
      if (type !== T_DATA && type !== T_BINARY) throw new Error('unknown frame type');
      this.#assemble(type === T_BINARY, header.readUInt16BE(5), header.readUInt16BE(7), header.readUInt32BE(9), payload);
    } catch (e) {
      this.close(e as Error);
    }
  }

  #assemble(binary: boolean, part: number, parts: number, total: number, payload: Uint8Array): void {
    if (part === 0) {
      if (this.#assembling) throw new Error('a new message started before the last one ended');
      if (total > this.maxMessage) throw new FrameTooLargeError(total, this.maxMessage);
      if (parts < 1 || parts > Math.ceil(total / 1024) + 1) throw new Error('implausible part count');
      if (binary && !this.#binary) throw new Error('a binary message before the session began');
      this.#assembling = { binary, total, parts, chunks: [], size: 0 };
    } else if (!this.#assembling || part !== this.#assembling.chunks.length || parts !== this.#assembling.parts || binary !== this.#assembling.binary) {
      throw new Error('message part out of order');
    }
    const a = this.#assembling!;
    a.size += payload.length;
    if (a.size > a.total) throw new Error('message longer than declared');
    a.chunks.push(Buffer.from(payload));
    if (a.chunks.length < a.parts) return;
    this.#assembling = undefined;
    if (a.size !== a.total) throw new Error('message shorter than declared');
    if (!a.binary) return this.#inbox.push(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(a.chunks, a.size)));
    // Memory of its own (not the shared pool of small buffers): a fast-path body is a view of it.
    const message = Buffer.allocUnsafeSlow(a.size);
    let at = 0;
    for (const c of a.chunks) {
      message.set(c, at);
      at += c.byteLength;
    }
    this.#binary!(message);
  }

  #tick(): void {
    const now = Date.now();
    if (this.#key && now - this.#lastHeard > this.#opts.sessionTimeoutMs) {
      return this.close(new ChannelClosedError(`no word from the peer of session ${this.#sid} for ${this.#opts.sessionTimeoutMs} ms`));
    }
    if (this.#key && now - this.#lastSent >= this.#opts.heartbeatMs) {
      try {
        this.#sendFrame(T_HEARTBEAT, 0, 1, 0, new Uint8Array(0));
      } catch (e) {
        this.close(e as Error);
      }
    }
  }
}

/** The nonce of a frame: its direction (1 client→server, 2 back) and sequence number, each used once per session key. */
function frameNonce(dir: number, seq: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce[0] = dir;
  nonce.writeUInt32BE(seq, 8);
  return nonce;
}

/** What a frame's tag covers besides its payload: direction, session id and the header before the tag. */
function frameAad(dir: number, sid: string, header: Buffer): Buffer {
  return Buffer.concat([Buffer.from([dir]), Buffer.from(sid), header.subarray(0, TAG_OFFSET)]);
}

/**
 * Seal `payload` into `frame` (its header written, HEADER + payload bytes long) under a session key:
 * the payload encrypted after the header, the tag in the header. Exported so a test can forge what a
 * peer holding the key could send.
 */
export function sealFrame(key: Buffer, dir: number, sid: string, frame: Buffer, payload: Uint8Array): void {
  const cipher = createCipheriv(AEAD, key, frameNonce(dir, frame.readUInt32BE(1)), { authTagLength: TAG });
  cipher.setAAD(frameAad(dir, sid, frame), { plaintextLength: payload.length });
  cipher.update(payload).copy(frame, HEADER);
  cipher.final();
  cipher.getAuthTag().copy(frame, TAG_OFFSET);
}

/** A reason as a close frame carries it: one line, cut to MAX_CLOSE_REASON bytes on a character boundary. */
function reasonBytes(message: string): Uint8Array {
  const line = message.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  const bytes = new TextEncoder().encode(line);
  if (bytes.length <= MAX_CLOSE_REASON) return bytes;
  let end = MAX_CLOSE_REASON;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // not inside a UTF-8 sequence
  return bytes.subarray(0, end);
}

export interface NatsListener {
  close(): Promise<void>;
}

/** A replica's instance name: one NATS subject token, short. */
export const INSTANCE_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * Serve `service` on NATS: each accepted session becomes a Channel handed to `onChannel`. With
 * `instance`, this process can also be dialled by name and is listed by `replicasNats`.
 */
export async function listenNats(
  nc: NatsConnection,
  service: string,
  maxMessage: number,
  onChannel: (channel: Channel) => void,
  opts: NatsChannelOptions & { queue?: string; instance?: string } = {},
): Promise<NatsListener> {
  const channels = new Set<NatsChannel>();
  const open = (err: Error | null, msg: Msg) => {
    if (err) return;
    try {
      const { sid } = JSON.parse(new TextDecoder().decode(msg.data)) as { sid?: unknown };
      if (typeof sid !== 'string' || !SID.test(sid)) return;
      const channel = new NatsChannel(nc, sid, 'server', maxMessage, opts);
      channels.add(channel);
      channel.onClose(() => channels.delete(channel));
      msg.respond('ok');
      onChannel(channel);
    } catch {
      // malformed request: ignore it
    }
  };
  const subs = [nc.subscribe(`cordon.connect.${service}`, { queue: opts.queue ?? service, callback: open })];
  const { instance } = opts;
  if (instance !== undefined) {
    if (!INSTANCE_NAME.test(instance)) throw new Error(`${JSON.stringify(instance)} is not a valid instance name (lower-case letters, digits, dashes)`);
    subs.push(nc.subscribe(`cordon.connect.${service}.${instance}`, { callback: open }));
    subs.push(nc.subscribe(`cordon.who.${service}`, { callback: (err, msg) => void (err || msg.respond(instance)) }));
  }
  await nc.flush();
  return {
    close: async () => {
      for (const sub of subs) sub.unsubscribe();
      for (const c of channels) c.close(new ChannelClosedError(`${service} stopped listening`));
    },
  };
}

/** At most this many replicas of one service are listed: answers beyond are dropped, whoever sent them. */
export const MAX_REPLICAS = 64;

/** The instance names of `service`'s replicas that answer within `waitMs` (listenNats with `instance`). */
export async function replicasNats(nc: NatsConnection, service: string, waitMs: number): Promise<string[]> {
  const names = new Set<string>();
  try {
    const replies = await nc.requestMany(`cordon.who.${service}`, '', { strategy: 'timer', maxWait: waitMs, maxMessages: MAX_REPLICAS });
    for await (const msg of replies) {
      const name = msg.string();
      if (INSTANCE_NAME.test(name)) names.add(name);
    }
  } catch {
    // no responders, or the connection is reconnecting: none known now
  }
  return [...names];
}

/** Open a session with some instance of `service` on NATS, or with the replica named `instance`. */
export async function connectNats(
  nc: NatsConnection,
  service: string,
  maxMessage: number,
  opts: NatsChannelOptions & { instance?: string } = {},
): Promise<NatsChannel> {
  const sid = randomBytes(16).toString('base64url');
  const channel = new NatsChannel(nc, sid, 'client', maxMessage, opts);
  const subject = opts.instance === undefined ? `cordon.connect.${service}` : `cordon.connect.${service}.${opts.instance}`;
  try {
    if (opts.instance !== undefined && !INSTANCE_NAME.test(opts.instance)) throw new Error(`${JSON.stringify(opts.instance)} is not a valid instance name`);
    await nc.flush(); // our reply subject must be subscribed before the server can answer on it
    await nc.request(subject, JSON.stringify({ sid }), { timeout: opts.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs });
  } catch (e) {
    const who = opts.instance === undefined ? service : `${service} replica ${opts.instance}`;
    const why = (e as { isNoResponders?: () => boolean }).isNoResponders?.()
      ? `no ${who} is listening on NATS`
      : `${who} did not answer on NATS (${(e as Error).message})`;
    const error = new Error(why);
    channel.close(error);
    throw error;
  }
  return channel;
}

export function serveNats(nc: NatsConnection, service: string, opts: AcceptOptions & NatsChannelOptions): Promise<NatsListener> {
  return listenNats(nc, service, opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage, (channel) => void accept(channel, opts), opts);
}

export async function connectNatsSession<Remote extends RpcCompatible<Remote>>(
  nc: NatsConnection,
  service: string,
  opts: ConnectOptions & NatsChannelOptions,
): Promise<MeshSession<Remote>> {
  const channel = await connectNats(nc, service, opts.quotas?.maxMessage ?? DEFAULT_QUOTAS.maxMessage, opts);
  return connect<Remote>(channel, opts);
}
