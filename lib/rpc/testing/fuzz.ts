/**
 * A fuzzer for an RPC server as a keyed client reaches it (issue 12: the supervisor as a sandbox
 * reaches it, and egress behind the capabilities it hands out). For a bounded time it opens sessions
 * to the server's Unix socket and sends, from a seeded generator so a failure can be replayed:
 *
 * - raw garbage: random bytes, bad length prefixes, truncated frames and non-JSON text, before and
 *   after the handshake;
 * - structurally valid capnweb messages (push, pull, resolve, reject, release, abort, stream, pipe)
 *   built from random expressions: method names and paths from a dictionary and made up, arguments of
 *   every special type (bigint, date, bytes, error, undefined, import, pipeline, remap, export,
 *   promise, …) at wrong places, deep nesting, huge strings, ids never handed out, negative and huge;
 * - mutations of a recorded legitimate exchange (`FuzzTarget.script`): its messages replayed in order
 *   with some of them flipped, replaced, truncated or re-wrapped.
 *
 * It asserts nothing itself: it reports how every session ended, so a test can check that the server
 * refused or aborted what it had to, answered the rest, and ended every session (none left hanging),
 * while the test watches the server processes (same PIDs, bounded memory) and a bystander.
 */
import { createConnection, type Socket } from 'node:net';
import type { RpcStub } from 'capnweb';
import type { Channel } from '../channel.ts';
import { encodeFrame } from '../frames.ts';
import { clientHandshake } from '../handshake.ts';
import type { Keyring, Role } from '../keys.ts';
import { DEFAULT_QUOTAS } from '../quotas.ts';
import { MeshSession } from '../session.ts';
import { SocketChannel } from '../unix.ts';

/** mulberry32: a small seeded generator (the fuzzer must be replayable from its seed, which Math.random is not). */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** Who the fuzzer is on one session. */
export interface Identity {
  keyring: Keyring;
  /** The name sent in the handshake (a sandbox's cordon). */
  name: string;
  /** Strings this identity legitimately knows that a guess would not find (a code key, binding names). */
  words: string[];
}

export interface FuzzTarget {
  /** The server's Unix socket. */
  socket: string;
  /** The server's role, as the handshake names it. */
  expect: Role;
  /** Asked before every session: an identity may change while the fuzzer runs (quarantine moves a worker). */
  identity(): Identity | Promise<Identity>;
  /** A legitimate exchange on a real session; its messages are what mutations start from. Errors are ignored. */
  script(remote: RpcStub<any>, identity: Identity): Promise<void>;
  /** Method and property names to call (the server's interface); made-up ones are added. */
  methods: readonly string[];
}

export interface FuzzOptions {
  seed: number;
  durationMs: number;
  /** Sessions run side by side. */
  lanes?: number;
  /** The largest frame the fuzzer builds (the server's limit is 16 MiB; huge strings stay below this). */
  maxMessage?: number;
  /** How long a session may wait for the server to end it after garbage (the handshake time-out is 5 s). */
  closeWaitMs?: number;
}

export type SessionEnd =
  /** The server refused the handshake (an error reply, or it closed the connection). */
  | 'refused'
  /** The server sent capnweb's abort and closed the connection. */
  | 'aborted'
  /** The server closed the connection after the handshake, without an abort message. */
  | 'closed'
  /** The fuzzer ended it; the server had kept it open (nothing it was sent was fatal). */
  | 'ours'
  /** The server neither ended it nor answered within `closeWaitMs` when it had to: a leak. */
  | 'hung';

export interface FuzzReport {
  seed: number;
  sessions: number;
  messages: number;
  /** Answers (resolve/reject) the server sent: the fuzzer reached methods, not only the parser. */
  answers: number;
  /** Capabilities the server exported to the fuzzer (in answers). */
  capabilities: number;
  ends: Record<SessionEnd, number>;
  /** Short descriptions of the first hung sessions, to reproduce them. */
  hung: string[];
  /** Why the server aborted sessions (the start of each abort message), with counts. */
  aborts: Record<string, number>;
}

const TAGS = [
  'bigint',
  'date',
  'bytes',
  'error',
  'undefined',
  'inf',
  '-inf',
  'nan',
  'url',
  'headers',
  'request',
  'response',
  'blob',
  'import',
  'pipeline',
  'remap',
  'export',
  'promise',
  'writable',
  'readable',
] as const;
const MESSAGE_TYPES = ['push', 'pull', 'resolve', 'reject', 'release', 'abort', 'stream', 'pipe'] as const;
const ODD_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'then',
  'toString',
  'valueOf',
  'toJSON',
  'dup',
  'onRpcBroken',
  'map',
  'call',
  'apply',
  'bind',
  'hasOwnProperty',
  'Symbol.dispose',
  '',
  ' ',
  '0',
  '-1',
  'length',
  '__defineGetter__',
  '\u0000',
  'a'.repeat(300),
  '../../etc/passwd',
];
const ERROR_NAMES = [
  'Error',
  'TypeError',
  'RangeError',
  'AggregateError',
  'EvalError',
  'SyntaxError',
  'DOMException',
  'QuotaExceededError',
  '__proto__',
  'constructor',
];
const BYTE_MARKERS = ['ArrayBuffer', 'DataView', 'Uint8Array', 'Int16Array', 'Float64Array', 'BigInt64Array', 'Buffer', 'SharedArrayBuffer', 'x'];

/** What one session knows: ids it may name, and the strings it holds. */
class Knowledge {
  /** Results of our pushes: ids 1..pushes on the server's exports table. */
  pushes = 0;
  /** Ids the server exported to us (in answers), which we may call. */
  readonly exports: number[] = [];
  /** Our own export ids handed out so far (negative). */
  ourExports = 0;
  readonly words: string[];
  readonly methods: readonly string[];
  constructor(words: string[], methods: readonly string[]) {
    this.words = words;
    this.methods = methods;
  }
}

/** Random capnweb expressions and messages. */
class Generator {
  readonly #rng: Rng;
  readonly #k: Knowledge;
  readonly #max: number;
  constructor(rng: Rng, k: Knowledge, maxMessage: number) {
    this.#rng = rng;
    this.#k = k;
    this.#max = maxMessage;
  }

  /** Mostly ids that name something (a bad id ends the session at once, before the message reaches a method). */
  id(): number {
    const r = this.#rng;
    const k = this.#k;
    const x = r.next();
    if (x < 0.4) return 0;
    if (x < 0.65 && k.exports.length) return r.pick(k.exports);
    if (x < 0.8 && k.pushes) return 1 + r.int(k.pushes);
    if (x < 0.9) return r.pick([-1, -2, 2 ** 31, -(2 ** 31), 2 ** 53, -(2 ** 53), 1e21, 0.5, -0.5, 4294967295, k.pushes + 1]);
    return r.int(20) - 10;
  }

  name(): string {
    const r = this.#rng;
    if (r.chance(0.6)) return r.pick(this.#k.methods);
    if (r.chance(0.5) && this.#k.words.length) return r.pick(this.#k.words);
    return r.chance(0.7) ? r.pick(ODD_NAMES) : this.string(12);
  }

  path(): (string | number)[] {
    const r = this.#rng;
    const n = r.chance(0.1) ? 0 : 1 + r.int(r.chance(0.8) ? 2 : 6);
    return Array.from({ length: n }, () => (r.chance(0.9) ? this.name() : r.int(5) - 1));
  }

  string(limit = 64): string {
    const r = this.#rng;
    switch (r.int(9)) {
      case 0:
        return '';
      case 1:
        return this.#k.words.length ? r.pick(this.#k.words) : 'x';
      case 2: {
        // A huge string: far over every per-argument limit, mostly below 64 Ki characters, sometimes
        // up to a MiB (4 MiB of UTF-8 at most, a quarter of the frame limit: memory is watched).
        const n = r.chance(0.9) ? 1 + r.int(64 * 1024) : 1 + r.int(Math.min(1 << 20, this.#max / 4));
        return r.pick(['A', 'é', '\u{1F600}', '\u0000', '"']).repeat(n);
      }
      case 3:
        return r.pick(ODD_NAMES);
      case 4:
        return String.fromCharCode(...Array.from({ length: r.int(limit) }, () => r.int(0x10000)));
      case 5: {
        // A word with one character changed: a near miss of something real.
        const w = this.#k.words.length ? r.pick(this.#k.words) : 'key';
        const i = r.int(w.length || 1);
        return w.slice(0, i) + String.fromCharCode(33 + r.int(94)) + w.slice(i + 1);
      }
      case 6:
        return r.pick([
          'SELECT 1',
          'SELECT * FROM sqlite_master',
          "ATTACH 'x' AS y",
          'PRAGMA writable_schema=1',
          'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 1000) SELECT count(*) FROM c',
          'CREATE TABLE IF NOT EXISTS t (x)',
          'http://127.0.0.1/',
          'https://fuzz.invalid/',
          'file:///etc/passwd',
          'a/b',
          '../x',
          '/abs',
          '.git/config',
        ]);
      default:
        return Array.from({ length: r.int(limit) }, () => String.fromCharCode(32 + r.int(95))).join('');
    }
  }

  number(): number {
    return this.#rng.pick([0, -0, 1, -1, 0.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e-308, Number.MAX_SAFE_INTEGER, 100, 10_000, 1e9]);
  }

  /** A capnweb expression (what may stand where a value is expected). */
  value(depth = 0): unknown {
    const r = this.#rng;
    if (depth > 3 + r.int(3)) return this.primitive();
    switch (r.int(10)) {
      case 0:
      case 1:
        return this.primitive();
      case 2:
        return [Array.from({ length: r.int(4) }, () => this.value(depth + 1))];
      case 3: {
        const o: Record<string, unknown> = {};
        for (let i = r.int(4); i > 0; i--)
          o[r.chance(0.2) ? r.pick(['__proto__', 'constructor', 'toJSON', 'then', 'valueOf']) : this.name()] = this.value(depth + 1);
        return o;
      }
      case 4:
        return this.nested();
      default:
        return this.special(depth);
    }
  }

  primitive(): unknown {
    const r = this.#rng;
    switch (r.int(5)) {
      case 0:
        return null;
      case 1:
        return r.chance(0.5);
      case 2:
        return this.number();
      default:
        return this.string();
    }
  }

  /**
   * Nesting around and far past the depth limit (64), as arrays or objects. Deeper than
   * JSON.stringify can go, so it stands in the tree as a placeholder that `stringify` expands.
   */
  nested(): unknown {
    const r = this.#rng;
    const depth = r.pick([63, 64, 65, 100, 1000, 20_000]);
    const inner = JSON.stringify(this.primitive());
    const text = r.chance(0.5) ? '{"a":'.repeat(depth) + inner + '}'.repeat(depth) : '[['.repeat(depth) + inner + ']]'.repeat(depth);
    const token = `__fuzz_deep_${this.#deep.size}__`;
    this.#deep.set(token, text);
    return token;
  }

  readonly #deep = new Map<string, string>();

  /** JSON text of a generated tree, deep placeholders expanded. */
  stringify(tree: unknown): string {
    let text = JSON.stringify(tree) ?? 'null';
    for (const [token, deep] of this.#deep) if (text.includes(token)) text = text.split(`"${token}"`).join(deep);
    this.#deep.clear();
    return text;
  }

  special(depth: number): unknown {
    const r = this.#rng;
    const tag = r.chance(0.05) ? this.string(10) : r.pick(TAGS);
    switch (tag) {
      case 'bigint':
        return ['bigint', r.pick(['0', '-1', '9'.repeat(r.pick([20, 16_384, 16_385, 100_000])), 'x', '1e3', ' 1'])];
      case 'date':
        return ['date', r.pick([0, null, 8.64e15 + 1, -1, 'now', 1e308])];
      case 'bytes':
        return r.chance(0.7)
          ? ['bytes', r.chance(0.8) ? this.#rng.bytes(r.chance(0.9) ? r.int(64) : r.int(1 << 20)).toString('base64') : this.string()]
          : ['bytes', 'AAAAAAAAAAA=', r.pick(BYTE_MARKERS)];
      case 'error':
        return ['error', r.pick(ERROR_NAMES), this.string(), ...(r.chance(0.5) ? [this.string()] : []), ...(r.chance(0.3) ? [this.value(depth + 1)] : [])];
      case 'undefined':
      case 'inf':
      case '-inf':
      case 'nan':
        return r.chance(0.9) ? [tag] : [tag, this.value(depth + 1)];
      case 'url':
        return ['url', r.chance(0.5) ? this.string() : 'http://127.0.0.1:1/'];
      case 'headers':
        return ['headers', r.chance(0.7) ? [[this.string(8), this.string(8)]] : this.value(depth + 1)];
      case 'request':
        return [
          'request',
          r.chance(0.5) ? 'http://127.0.0.1:1/' : this.string(),
          r.chance(0.8) ? { method: this.string(8), body: this.value(depth + 1), headers: [[this.string(8), this.string(8)]] } : this.value(depth + 1),
        ];
      case 'response':
        return ['response', this.value(depth + 1), r.chance(0.8) ? { status: r.pick([200, 0, 999, 101, -1]), headers: [['a', 'b']] } : this.value(depth + 1)];
      case 'blob':
        return ['blob', this.string(), this.value(depth + 1)];
      case 'import':
      case 'pipeline':
        return this.call(tag, depth);
      case 'remap':
        return [
          'remap',
          this.id(),
          this.path(),
          r.chance(0.7) ? [[r.pick(['import', 'export', 'x']), this.id()]] : this.value(depth + 1),
          r.chance(0.5) ? [this.value(depth + 1)] : this.value(depth + 1),
        ];
      case 'export':
      case 'promise':
        return [tag, r.chance(0.8) ? -1 - this.#k.ourExports++ : this.id()];
      case 'writable':
      case 'readable':
        return [tag, this.id()];
      default:
        return [tag, ...Array.from({ length: r.int(3) }, () => this.value(depth + 1))];
    }
  }

  /** `["pipeline" | "import", id, path, args]`: a call (or a property) on something the server holds. */
  call(tag: 'import' | 'pipeline', depth = 0): unknown[] {
    const r = this.#rng;
    const out: unknown[] = [tag, this.id()];
    if (r.chance(0.9)) out.push(r.chance(0.9) ? this.path() : this.value(depth + 1));
    if (out.length === 3 && r.chance(0.85)) out.push(r.chance(0.9) ? Array.from({ length: r.int(4) }, () => this.value(depth + 1)) : this.value(depth + 1));
    return out;
  }

  /** One capnweb message, as text. */
  message(): string {
    const r = this.#rng;
    const k = this.#k;
    let msg: unknown;
    const type = r.chance(0.03) ? this.string(8) : r.chance(0.5) ? 'push' : r.pick(MESSAGE_TYPES);
    switch (type) {
      case 'push':
        msg = ['push', r.chance(0.85) ? this.call(r.chance(0.8) ? 'pipeline' : 'import') : this.value()];
        k.pushes++;
        break;
      case 'stream':
        msg = ['stream', r.chance(0.85) ? this.call('pipeline') : this.value()];
        k.pushes++;
        break;
      case 'pipe':
        msg = r.chance(0.9) ? ['pipe'] : ['pipe', this.value()];
        k.pushes++;
        break;
      case 'pull':
        msg = ['pull', r.chance(0.9) ? this.id() : this.value()];
        break;
      case 'resolve':
      case 'reject':
        msg = [type, this.id(), this.value()];
        break;
      case 'release':
        msg = ['release', this.id(), r.chance(0.8) ? r.pick([1, 2, 0, -1, 1e9]) : this.value()];
        break;
      case 'abort':
        msg = ['abort', this.value()];
        break;
      default:
        msg = r.chance(0.5) ? [type, this.value()] : this.value();
    }
    let text = this.stringify(msg);
    // Now and then the transport's traceparent line in front, well-formed or not.
    if (r.chance(0.05))
      text = `${r.chance(0.5) ? '00-' + 'ab'.repeat(16) + '-' + 'cd'.repeat(8) + '-01' : this.string(55).padEnd(55, 'x').slice(0, 55)}\n${text}`;
    return text;
  }

  /** A mutated copy of a recorded message. */
  mutate(text: string): string {
    const r = this.#rng;
    if (r.chance(0.15)) return this.#mutateText(text);
    let tree: unknown;
    try {
      tree = JSON.parse(text);
    } catch {
      return this.#mutateText(text);
    }
    const root = { v: tree };
    const slots: [Record<string | number, unknown>, string | number][] = [[root, 'v']];
    const walk = (node: unknown, depth: number) => {
      if (depth > 40 || node === null || typeof node !== 'object') return;
      for (const key of Object.keys(node)) {
        const k = Array.isArray(node) ? Number(key) : key;
        slots.push([node as Record<string | number, unknown>, k]);
        walk((node as Record<string, unknown>)[key], depth + 1);
      }
    };
    walk(tree, 0);
    for (let n = 1 + (r.chance(0.3) ? r.int(3) : 0); n > 0; n--) {
      const [parent, key] = r.pick(slots);
      parent[key] = this.#mutateNode(parent[key]);
    }
    return this.stringify(root.v);
  }

  #mutateNode(node: unknown): unknown {
    const r = this.#rng;
    if (r.chance(0.25)) return this.value();
    if (typeof node === 'number') return r.pick([-node, node + 1, node - 1, 0, node * 1000, 2 ** 31, -(2 ** 53), node + 0.5, 1e300]);
    if (typeof node === 'string') {
      switch (r.int(6)) {
        case 0:
          return node.slice(0, r.int(node.length + 1));
        case 1:
          return node + node;
        case 2:
          return this.string();
        case 3:
          return r.pick(TAGS);
        case 4:
          return ['export', -1 - this.#k.ourExports++];
        default: {
          const i = r.int(node.length || 1);
          return node.slice(0, i) + String.fromCharCode(r.int(0x10000)) + node.slice(i + 1);
        }
      }
    }
    if (Array.isArray(node)) {
      const copy = [...node];
      switch (r.int(6)) {
        case 0:
          copy.splice(r.int(copy.length + 1), 1);
          return copy;
        case 1:
          if (copy.length) copy.splice(r.int(copy.length), 0, copy[r.int(copy.length)]);
          return copy;
        case 2:
          return [copy];
        case 3:
          return copy.length === 1 && Array.isArray(copy[0]) ? copy[0] : [r.pick(TAGS), ...copy.slice(1)];
        case 4:
          copy[0] = r.pick([...TAGS, ...MESSAGE_TYPES]);
          return copy;
        default:
          return [];
      }
    }
    if (node && typeof node === 'object') {
      const copy: Record<string, unknown> = { ...(node as Record<string, unknown>) };
      const keys = Object.keys(copy);
      if (keys.length && r.chance(0.5)) delete copy[r.pick(keys)];
      else copy[r.pick(['__proto__', 'constructor', 'toJSON', 'then', this.name()])] = this.value();
      return copy;
    }
    return this.value();
  }

  #mutateText(text: string): string {
    const r = this.#rng;
    const i = r.int(text.length + 1);
    switch (r.int(4)) {
      case 0:
        return text.slice(0, i);
      case 1:
        return text.slice(0, i) + String.fromCharCode(r.int(0x10000)) + text.slice(i + 1);
      case 2:
        return text.slice(0, i) + text.slice(r.int(text.length + 1));
      default:
        return text.slice(0, i) + r.pick(['[', ']', '{', '"', ',', '\\', 'null', '\u0000']) + text.slice(i);
    }
  }
}

/** One message of a recorded exchange, in order. */
interface Recorded {
  out: boolean;
  text: string;
}

/** A Channel that records every message it carries. */
class RecordingChannel implements Channel {
  readonly log: Recorded[] = [];
  readonly #inner: Channel;
  constructor(inner: Channel) {
    this.#inner = inner;
  }
  get closed() {
    return this.#inner.closed;
  }
  get maxMessage() {
    return this.#inner.maxMessage;
  }
  get description() {
    return this.#inner.description;
  }
  send(message: string): void {
    this.log.push({ out: true, text: message });
    this.#inner.send(message);
  }
  async receive(): Promise<string> {
    const m = await this.#inner.receive();
    this.log.push({ out: false, text: m });
    return m;
  }
  close(reason?: Error): void {
    this.#inner.close(reason);
  }
  onClose(callback: (reason: Error) => void): void {
    this.#inner.onClose(callback);
  }
  authenticated(): void {
    this.#inner.authenticated();
  }
}

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** Ids of capabilities and promises the server exported in an answer. */
function exportedIds(value: unknown, into: number[], depth = 0): void {
  if (depth > 64 || !Array.isArray(value)) {
    if (value && typeof value === 'object' && depth <= 64) for (const v of Object.values(value)) exportedIds(v, into, depth + 1);
    return;
  }
  if ((value[0] === 'export' || value[0] === 'promise') && typeof value[1] === 'number') into.push(value[1]);
  else for (const v of value) exportedIds(v, into, depth + 1);
}

/** The gist of an abort message: its error's name and the message up to its first detail, so alike ones group. */
function abortReason(text: string): string {
  let name = 'abort';
  let message = text;
  try {
    const e = (JSON.parse(text) as unknown[])[1];
    if (Array.isArray(e) && e[0] === 'error') [name, message] = [String(e[1]), String(e[2])];
  } catch {
    // keep the text
  }
  return `${name}: ${message
    .split(/: |[[{"]| in JSON| at position/)[0]!
    .slice(0, 60)
    .replace(/-?\d+/g, 'N')
    .trim()}`;
}

/** One fuzz session on a fresh connection: what it sends, and how it ended. */
class Session {
  readonly socket: Socket;
  readonly channel: SocketChannel;
  readonly ended: Promise<void>;
  /** The server sent capnweb's abort: its message. */
  aborted: string | undefined;
  received = 0;
  answers = 0;
  /** The handshake passed: an end from the server now is an abort or a close, not a refusal. */
  authenticated = false;
  readonly knowledge: Knowledge;
  constructor(socket: Socket, knowledge: Knowledge) {
    this.socket = socket;
    // Frames up to the server's own limit both ways (its answers can be as large as our messages).
    this.channel = new SocketChannel(socket, DEFAULT_QUOTAS.maxMessage, 'fuzz');
    this.knowledge = knowledge;
    this.ended = new Promise((resolve) => this.channel.onClose(() => resolve()));
  }

  /** Read what the server sends until the connection ends, learning the ids it exports. */
  async read(): Promise<void> {
    for (;;) {
      let text: string;
      try {
        text = await this.channel.receive();
      } catch {
        return;
      }
      this.received++;
      if (text.startsWith('["abort"')) this.aborted = abortReason(text);
      if (text.startsWith('["resolve"') || text.startsWith('["reject"')) {
        this.answers++;
        try {
          exportedIds((JSON.parse(text) as unknown[])[2], this.knowledge.exports);
        } catch {
          // not ours to judge
        }
      }
    }
  }

  send(text: string): boolean {
    if (this.channel.closed) return false;
    try {
      this.channel.send(text);
      return true;
    } catch {
      return false; // too large to frame, or closed meanwhile
    }
  }

  /** Wait for the server to end the session, up to `ms`; whether it did. */
  async endsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.ended.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
    clearTimeout(timer);
    return r;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the fuzzer against `target` for `opts.durationMs`; see the module comment. */
export async function fuzz(target: FuzzTarget, opts: FuzzOptions): Promise<FuzzReport> {
  const rng = new Rng(opts.seed);
  const maxMessage = opts.maxMessage ?? 8 << 20;
  const closeWaitMs = opts.closeWaitMs ?? 8000;
  const deadline = Date.now() + opts.durationMs;
  const report: FuzzReport = {
    seed: opts.seed,
    sessions: 0,
    messages: 0,
    answers: 0,
    capabilities: 0,
    ends: { refused: 0, aborted: 0, closed: 0, ours: 0, hung: 0 },
    hung: [],
    aborts: {},
  };
  const transcripts = new Map<string, Recorded[]>();
  /** Sessions whose end is still awaited. */
  const waiting: Promise<void>[] = [];
  const end = (how: SessionEnd, what: string) => {
    report.ends[how]++;
    if (how === 'hung' && report.hung.length < 10) report.hung.push(what);
  };

  /** The legitimate exchange of `identity`, recorded once per identity. */
  const transcriptFor = async (identity: Identity): Promise<Recorded[]> => {
    const key = `${identity.name}\0${identity.words.join('\0')}`;
    let log = transcripts.get(key);
    if (log) return log;
    const channel = new SocketChannel(await dial(target.socket), DEFAULT_QUOTAS.maxMessage, 'fuzz-recording');
    const { peer } = await clientHandshake(channel, { keyring: identity.keyring, name: identity.name, expect: target.expect });
    const recording = new RecordingChannel(channel);
    const session = new MeshSession<any>(recording, peer, undefined);
    try {
      await target.script(session.remote, identity);
    } catch {
      // A refusal is part of the exchange too.
    } finally {
      session.close();
    }
    transcripts.set(key, (log = recording.log));
    return log;
  };

  /** A connection that has passed the handshake as `identity`, or undefined if the server refused it. */
  const authenticated = async (identity: Identity, knowledge: Knowledge): Promise<Session | undefined> => {
    const s = new Session(await dial(target.socket), knowledge);
    try {
      await clientHandshake(s.channel, { keyring: identity.keyring, name: identity.name, expect: target.expect });
    } catch {
      s.channel.close();
      s.socket.destroy();
      end('refused', 'handshake');
      return undefined;
    }
    s.authenticated = true;
    void s.read();
    return s;
  };

  /** Let the server answer; stop early if it ended the session. */
  const breathe = async (s: Session, budget: number) => {
    if (rng.chance(0.3)) await Promise.race([s.ended, pause(rng.int(budget))]);
  };

  /** Classify how `s` ended; `mustEnd`: what it was sent leaves the server no choice but to end it. */
  const finish = async (s: Session, what: string, mustEnd: boolean) => {
    if (mustEnd && !s.channel.closed && !(await s.endsWithin(closeWaitMs))) end('hung', what);
    else if (!s.channel.closed) end('ours', what);
    else end(!s.authenticated ? 'refused' : s.aborted ? 'aborted' : 'closed', what);
    if (s.aborted) report.aborts[s.aborted] = (report.aborts[s.aborted] ?? 0) + 1;
    report.answers += s.answers;
    report.capabilities += s.knowledge.exports.length;
    s.channel.close();
    s.socket.destroy();
  };

  /** Garbage before or after the handshake: the server must end the connection. */
  const garbage = async (identity: Identity) => {
    const afterHandshake = rng.chance(0.5);
    const knowledge = new Knowledge(identity.words, target.methods);
    let s: Session | undefined;
    if (afterHandshake) {
      s = await authenticated(identity, knowledge);
      if (!s) return;
    } else {
      s = new Session(await dial(target.socket), knowledge);
      void s.read();
    }
    const kind = rng.int(6);
    let bytes: Buffer;
    switch (kind) {
      case 0: // random bytes
        bytes = rng.bytes(1 + rng.int(4096));
        break;
      case 1: // a length beyond any limit
        bytes = Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        break;
      case 2: // a frame of invalid UTF-8 / non-JSON text
        bytes = Buffer.concat([Buffer.from([0, 0, 0, 16]), rng.bytes(16)]);
        break;
      case 3: // a truncated frame: the header promises more than ever comes
        bytes = Buffer.concat([Buffer.from([0, 0, 0x10, 0]), rng.bytes(rng.int(100))]);
        break;
      case 4: // an empty frame, then JSON that is not a message
        bytes = Buffer.concat([encodeFrame('', maxMessage), encodeFrame(rng.pick(['{}', '[]', 'null', '"x"', '[[]]', '{"v":1}', '[1,2,3]']), maxMessage)]);
        break;
      default: // frames of random printable text
        bytes = Buffer.concat(
          Array.from({ length: 1 + rng.int(5) }, () =>
            encodeFrame(Array.from({ length: rng.int(200) }, () => String.fromCharCode(32 + rng.int(95))).join(''), maxMessage),
          ),
        );
    }
    s.socket.write(bytes);
    report.messages++;
    // Before the handshake everything ends (at the latest at its time-out); after it, a frame the
    // header says is not complete yet is simply awaited, as on any idle session. The lane goes on
    // meanwhile; the run waits for these at its end.
    const complete = kind === 1 || kind === 2 || kind === 4 || kind === 5;
    waiting.push(finish(s, `garbage kind ${kind} ${afterHandshake ? 'after' : 'before'} the handshake`, !afterHandshake || complete));
  };

  /** Random well-formed capnweb messages. */
  const random = async (identity: Identity) => {
    const knowledge = new Knowledge(identity.words, target.methods);
    const s = await authenticated(identity, knowledge);
    if (!s) return;
    const gen = new Generator(rng, knowledge, maxMessage);
    // Start as a real client would, so later messages can name real capabilities.
    if (rng.chance(0.7) && identity.words.length) {
      const key = identity.words[0]!;
      s.send(JSON.stringify(['push', ['pipeline', 0, [rng.pick(['capabilities', 'loadWorker'])], [key]]]));
      knowledge.pushes++;
      s.send(JSON.stringify(['pull', knowledge.pushes]));
      await Promise.race([s.ended, pause(50)]);
    }
    const count = 1 + rng.int(40);
    for (let i = 0; i < count && Date.now() < deadline && !s.channel.closed; i++) {
      if (s.send(gen.message())) report.messages++;
      if (rng.chance(0.3) && knowledge.pushes) s.send(JSON.stringify(['pull', knowledge.pushes]));
      await breathe(s, 30);
    }
    await Promise.race([s.ended, pause(20)]);
    await finish(s, 'random messages', false);
  };

  /** The recorded exchange replayed with some messages mutated. */
  const mutated = async (identity: Identity) => {
    const log = await transcriptFor(identity);
    const knowledge = new Knowledge(identity.words, target.methods);
    const s = await authenticated(identity, knowledge);
    if (!s) return;
    const gen = new Generator(rng, knowledge, maxMessage);
    const outs = log.filter((m) => m.out).length;
    const rate = rng.pick([0.05, 0.2, 0.5]);
    let seenIn = 0;
    let mutations = 0;
    for (const m of log) {
      if (s.channel.closed || Date.now() > deadline) break;
      if (!m.out) {
        seenIn++;
        continue;
      }
      // Send each message once the server has answered as much as it had in the recording (later
      // messages name capabilities the answers carried), but never wait long on a diverged replay.
      for (let waited = 0; s.received < seenIn && waited < 200 && !s.channel.closed; waited += 5) await pause(5);
      let text = m.text;
      if (/^\["(?:push|stream|pipe)"/.test(text)) knowledge.pushes++;
      if (rng.chance(rate) || (mutations === 0 && rng.chance(1 / Math.max(1, outs)))) {
        text = gen.mutate(text);
        mutations++;
      }
      if (s.send(text)) report.messages++;
    }
    await Promise.race([s.ended, pause(50)]);
    await finish(s, `replay with ${mutations} mutations`, false);
  };

  const lane = async () => {
    while (Date.now() < deadline) {
      const identity = await target.identity();
      report.sessions++;
      const mode = rng.int(10);
      try {
        if (mode < 2) await garbage(identity);
        else if (mode < 6) await random(identity);
        else await mutated(identity);
      } catch (e) {
        // A connection the server would not take is a refusal; anything else is the fuzzer's own bug.
        if ((e as NodeJS.ErrnoException).code === 'ECONNREFUSED' || (e as NodeJS.ErrnoException).code === 'ENOENT') end('refused', 'connect');
        else throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.lanes ?? 2 }, () => lane()));
  await Promise.all(waiting);
  return report;
}
