/**
 * console's arguments as LogValues (abi.ts): what the host needs to print them as workerd does, with
 * Node's util.format (log-format.ts) — constructor names, accessors, holes, cycles, error stacks —
 * without the formatter in the isolate (it would be ~400 KB of heap in each isolate that logs an object).
 * Getters are never called; a format string's `%s`, `%d`, `%i`, `%f` and `%j` conversions that may call
 * the tenant's own code (toString, valueOf, toJSON) are made here, where it runs under its limits.
 * Bounded: the depth util.inspect would show, 100 items per container, 2,000 nodes per line.
 */
import type { LogKind, LogNode, LogValue } from '../abi.ts';

const getProto = Object.getPrototypeOf;
const ownKeys = Reflect.ownKeys;
const keysOf = Object.keys;
const describe = Object.getOwnPropertyDescriptor;
const hasOwn = Object.hasOwn;
const apply = Reflect.apply;
const isArray = Array.isArray;
const JSONstringify = JSON.stringify;
const StringCtor = String;
const NumberCtor = Number;
const parseIntFn = parseInt;
const parseFloatFn = parseFloat;
const MapCtor = Map;
const strSlice = String.prototype.slice;
const includes = String.prototype.includes;
const split = String.prototype.split;
const arrayJoin = Array.prototype.join;
const charCodeAt = String.prototype.charCodeAt;
const fnToString = Function.prototype.toString;
const getter = (proto: object, name: string | symbol) => describe(proto, name)!.get!;
const TypedArrayProto = getProto(Uint8Array.prototype) as object;
const typedTag = getter(TypedArrayProto, Symbol.toStringTag);
const typedLength = getter(TypedArrayProto, 'length');
const abLength = getter(ArrayBuffer.prototype, 'byteLength');
const mapSize = getter(Map.prototype, 'size');
const setSize = getter(Set.prototype, 'size');
const mapForEach = Map.prototype.forEach;
const setForEach = Set.prototype.forEach;
const dateTime = Date.prototype.getTime;
const reSource = getter(RegExp.prototype, 'source');
const reFlags = getter(RegExp.prototype, 'flags');
const symbolDescription = getter(Symbol.prototype, 'description');
const U8 = Uint8Array;
const toStringTag = Symbol.toStringTag;
const toPrimitive = Symbol.toPrimitive;
const BOXES = [Number.prototype.valueOf, String.prototype.valueOf, Boolean.prototype.valueOf, BigInt.prototype.valueOf, Symbol.prototype.valueOf];
/** Prototypes whose toString util.format's `%s` counts as built in (it then inspects the object instead). */
const BUILTIN_PROTOS = new Set<unknown>(
  [Object, Array, Error, Date, RegExp, Function, Map, Set, Promise, Number, String, Boolean, Symbol, BigInt, ArrayBuffer].map((c) => c.prototype),
);
const ErrorCtor = Error;
const PromiseCtor = Promise;
const WeakMapCtor = WeakMap;
const WeakSetCtor = WeakSet;

const MAX_ITEMS = 100;
const MAX_NODES = 2000;
const MAX_STRING = 10_000;
const MAX_BYTES = 50;
/** A top-level string is printed whole; the line is cut at 64 KiB anyway. */
const MAX_TOP_STRING = 64 * 1024;
/** Kinds util.inspect prints as `[Name]` past its depth (if not empty). */
const CONTAINERS = new Set<LogKind>(['object', 'array', 'map', 'set', 'promise', 'boxed']);
/** Function properties util.inspect's showHidden (`%o`) shows from the function itself: the host's copy has its own. */
const FUNCTION_OWN = new Set<string | symbol>(['length', 'name', 'prototype', 'arguments', 'caller']);

/** Brand checks: the captured method throws for anything but its own kind. */
function is(method: (...a: never[]) => unknown, v: object): boolean {
  try {
    apply(method, v, []);
    return true;
  } catch {
    return false;
  }
}

function constructorName(v: object): string | null {
  for (let o: object | null = v; o !== null; o = getProto(o) as object | null) {
    const d = describe(o, 'constructor');
    if (d && typeof d.value === 'function' && typeof d.value.name === 'string' && d.value.name !== '') return d.value.name;
  }
  return getProto(v) === null ? null : 'Object';
}

class Walk {
  nodes = 0;
  readonly seen = new MapCtor<object, LogNode>();
  readonly depth: number;
  readonly hidden: boolean;
  constructor(depth: number, hidden: boolean) {
    this.depth = depth;
    this.hidden = hidden;
  }

  value(v: unknown, level: number): LogValue {
    if (typeof v === 'string') {
      if (v.length <= MAX_STRING) return v;
      return { k: 'string', c: null, p: [], v: apply(strSlice, v, [0, MAX_STRING]), more: v.length - MAX_STRING };
    }
    if (typeof v === 'symbol') return { k: 'symbol', c: null, p: [], v: apply(symbolDescription, v, []) };
    if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return v as LogValue;
    const known = this.seen.get(v);
    if (known) return known;
    const node: LogNode = { k: 'object', c: constructorName(v), p: [] };
    this.seen.set(v, node);
    node.k = this.kind(v);
    this.fill(node, v, level + 1, level > this.depth || ++this.nodes > MAX_NODES);
    return node;
  }

  kind(v: object): LogKind {
    if (typeof v === 'function') return 'function';
    if (isArray(v)) return 'array';
    if (apply(typedTag, v, []) !== undefined) return 'typed';
    if (is(mapSize, v)) return 'map';
    if (is(setSize, v)) return 'set';
    if (is(dateTime, v)) return 'date';
    if (is(abLength, v)) return 'arraybuffer';
    if (v instanceof ErrorCtor) return 'error';
    if (is(reSource, v) && v instanceof RegExp) return 'regexp';
    if (v instanceof PromiseCtor) return 'promise';
    if (v instanceof WeakMapCtor) return 'weakmap';
    if (v instanceof WeakSetCtor) return 'weakset';
    for (const unbox of BOXES) if (is(unbox, v)) return 'boxed';
    return 'object';
  }

  /** Its content; `deep`: past the depth shown, only what util.inspect prints there (a function's or an error's text, whether a container is empty). */
  fill(node: LogNode, v: object, level: number, deep: boolean): void {
    const o = v as Record<PropertyKey, unknown>;
    let skipIndexes = false;
    if (deep && CONTAINERS.has(node.k)) {
      node.deep = true;
      // Emptiness as util.inspect judges it: elements, or enumerable own keys.
      const size = node.k === 'map' ? apply(mapSize, v, []) : node.k === 'set' ? apply(setSize, v, []) : node.k === 'array' ? (v as unknown[]).length : 0;
      node.more = size || keysOf(v).length ? 1 : 0;
      return;
    }
    switch (node.k) {
      case 'array': {
        const a = v as unknown[];
        const n = a.length < MAX_ITEMS ? a.length : MAX_ITEMS;
        const items: LogValue[] = [];
        for (let i = 0; i < n; i++) items[i] = i in a ? this.value(a[i], level) : { k: 'hole', c: null, p: [] };
        node.v = items;
        if (a.length > n) node.more = a.length - n;
        skipIndexes = true;
        break;
      }
      case 'typed': {
        const length = apply(typedLength, v, []) as number;
        const n = length < MAX_ITEMS ? length : MAX_ITEMS;
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items[i] = o[i];
        node.c = apply(typedTag, v, []) as string;
        node.v = items;
        if (length > n) node.more = length - n;
        return;
      }
      case 'arraybuffer': {
        const length = apply(abLength, v, []) as number;
        const bytes = new U8(v as ArrayBuffer, 0, length < MAX_BYTES ? length : MAX_BYTES);
        const items: number[] = [];
        for (let i = 0; i < bytes.length; i++) items[i] = bytes[i]!;
        node.v = items;
        node.more = length - items.length;
        return;
      }
      case 'map': {
        const entries: [LogValue, LogValue][] = [];
        apply(mapForEach, v, [
          (value: unknown, key: unknown) => entries.length < MAX_ITEMS && (entries[entries.length] = [this.value(key, level), this.value(value, level)]),
        ]);
        node.v = entries;
        node.more = (apply(mapSize, v, []) as number) - entries.length;
        break;
      }
      case 'set': {
        const items: LogValue[] = [];
        apply(setForEach, v, [(value: unknown) => items.length < MAX_ITEMS && (items[items.length] = this.value(value, level))]);
        node.v = items;
        node.more = (apply(setSize, v, []) as number) - items.length;
        break;
      }
      case 'date':
        node.v = apply(dateTime, v, []);
        break;
      case 'regexp':
        node.v = [apply(reSource, v, []), apply(reFlags, v, [])];
        break;
      case 'error': {
        // V8 keeps `stack` as an own accessor: read, as util.inspect reads it.
        const e = v as Error;
        const stack = e.stack;
        const message = describe(v, 'message');
        const cause = describe(v, 'cause');
        node.v = [
          typeof stack === 'string' ? runtimeFramesOut(stack) : null,
          message && typeof message.value === 'string' ? message.value : '',
          typeof e.name === 'string' ? e.name : 'Error',
          ...(cause && 'value' in cause && !deep ? [this.value(cause.value, level)] : []),
        ];
        break;
      }
      case 'function': {
        const f = v as (...a: unknown[]) => unknown;
        const source = apply(fnToString, f, []) as string;
        const isClass = apply(strSlice, source, [0, 5]) === 'class';
        // Read from its prototype's tag: lockdown replaced the constructors of every function kind.
        const kindTag = (getProto(f) as Record<symbol, unknown> | null)?.[toStringTag];
        const form = isClass
          ? 'class'
          : kindTag === 'AsyncFunction' || kindTag === 'GeneratorFunction' || kindTag === 'AsyncGeneratorFunction'
            ? kindTag
            : hasOwn(f, 'prototype')
              ? 'function'
              : 'arrow';
        const parent = isClass ? (getProto(f) as { name?: unknown } | null) : null;
        const name = describe(f, 'name');
        const length = describe(f, 'length');
        node.v = [
          name && typeof name.value === 'string' ? name.value : '',
          form,
          length && typeof length.value === 'number' ? length.value : 0,
          parent && typeof parent === 'function' && typeof parent.name === 'string' ? parent.name : null,
        ];
        break;
      }
      case 'boxed':
        for (const unbox of BOXES) if (is(unbox, v)) node.v = this.value(apply(unbox, v, []), level);
        skipIndexes = typeof node.v === 'string';
        break;
      default:
    }
    if (deep) return;
    const tag = o[toStringTag];
    if (typeof tag === 'string' && tag !== node.c && !hasOwn(v, toStringTag)) node.t = tag;
    for (const key of ownKeys(v)) {
      if (node.p.length >= MAX_ITEMS || ++this.nodes > MAX_NODES) break;
      if (skipIndexes && typeof key === 'string' && (key === 'length' || isIndex(key))) continue;
      if (node.k === 'function' && FUNCTION_OWN.has(key)) continue;
      if (node.k === 'error' && (key === 'stack' || key === 'message' || key === 'cause')) continue;
      const d = describe(v, key);
      if (!d || (!d.enumerable && !this.hidden)) continue;
      const k = typeof key === 'symbol' ? (this.value(key, level) as LogNode) : key;
      if ('value' in d) node.p[node.p.length] = [k, this.value(d.value, level), 0, !d.enumerable];
      else node.p[node.p.length] = [k, undefined, ((d.get ? 1 : 0) | (d.set ? 2 : 0)) as 1 | 2 | 3, !d.enumerable];
    }
  }
}

/** A stack without the runtime's own frames (the bootstrap's), as workerd's shows only the worker's. */
function runtimeFramesOut(stack: string): string {
  const lines = apply(split, stack, ['\n']) as string[];
  const kept: string[] = [];
  for (const line of lines) if (!apply(includes, line, ['cordon:bootstrap:'])) kept[kept.length] = line;
  return apply(arrayJoin, kept, ['\n']) as string;
}

function isIndex(key: string): boolean {
  if (key.length === 0 || key.length > 10) return false;
  for (let i = 0; i < key.length; i++) {
    const c = apply(charCodeAt, key, [i]) as number;
    if (c < 48 || c > 57) return false;
  }
  return key === '0' || apply(charCodeAt, key, [0]) !== 48;
}

/** What util.format's `%s` does with an object itself: String() it if it has a toString of its own making (Node's hasBuiltInToString). */
function ownToString(v: object): boolean {
  if (typeof (v as Record<symbol, unknown>)[toPrimitive] === 'function') return true;
  if (typeof (v as { toString?: unknown }).toString !== 'function') return false;
  if (hasOwn(v, 'toString')) return true;
  let p: object | null = v;
  do p = getProto(p) as object | null;
  while (p !== null && !hasOwn(p, 'toString'));
  return p !== null && !BUILTIN_PROTOS.has(p);
}

/** The conversions a format string asks of each argument after it, as util.format reads them. */
function conversions(format: string, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < format.length - 1 && out.length < count; i++) {
    if (apply(charCodeAt, format, [i]) !== 37) continue;
    const c = apply(strSlice, format, [i + 1, i + 2]) as string;
    if (c === '%') i++;
    else if (apply(includes, 'sdifjoOc', [c])) {
      out[out.length] = c;
      i++;
    }
  }
  return out;
}

/** console's arguments as LogValues; bounded as the module says. */
export function mirrorArgs(args: unknown[]): LogValue[] {
  const out: LogValue[] = [];
  const first = args[0];
  const convs = typeof first === 'string' ? conversions(first, args.length - 1) : [];
  const plain = new Walk(2, false);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const conv = i > 0 ? convs[i - 1] : undefined;
    const object = a !== null && (typeof a === 'object' || typeof a === 'function');
    if (typeof a === 'string' && (i === 0 || conv === undefined || conv === 's'))
      out[i] = a.length > MAX_TOP_STRING ? apply(strSlice, a, [0, MAX_TOP_STRING]) : a;
    else if (conv === 'o') out[i] = new Walk(4, true).value(a, 0);
    else if (conv === 's' && object && ownToString(a)) out[i] = StringCtor(a);
    else if (conv === 's') out[i] = new Walk(0, false).value(a, 0);
    else if ((conv === 'd' || conv === 'i' || conv === 'f') && (object || typeof a === 'string'))
      out[i] = conv === 'd' ? NumberCtor(a) : conv === 'i' ? parseIntFn(a as string) : parseFloatFn(a as string);
    else if (conv === 'j') out[i] = json(a);
    else if (conv === 'c') out[i] = '';
    else out[i] = plain.value(a, 0);
  }
  return out;
}

/** `%j`: JSON.stringify here (toJSON is the tenant's); `c: 'circular'` where util.format prints `[Circular]`. */
function json(v: unknown): LogNode {
  try {
    return { k: 'json', c: null, p: [], v: JSONstringify(v) };
  } catch (e) {
    if (e instanceof TypeError && apply(includes, e.message, ['circular structure'])) return { k: 'json', c: 'circular', p: [] };
    throw e;
  }
}
