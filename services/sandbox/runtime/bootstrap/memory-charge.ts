/**
 * Every backing store a worker can reach counts against its memory limit.
 *
 * isolated-vm counts the V8 heap and what its ArrayBuffer allocator hands out (plain ArrayBuffers,
 * typed arrays, `transfer()` of a fixed-length buffer); over the limit an allocation fails with a
 * RangeError, and a garbage collection that finds heap + allocations over it disposes the isolate.
 * V8 makes two kinds of store without that allocator, which isolated-vm never sees: resizable
 * ArrayBuffers (`maxByteLength`) and WebAssembly memories. Each of those is charged here when it is
 * made, at the most it can ever hold, with a *ballast*: a plain ArrayBuffer of that size from the
 * counted allocator, never written (so it costs no RAM: freshly mapped pages are not committed until
 * touched), kept alive exactly as long as anything that can reach the store (a WeakMap from each
 * holder to it). The charge is taken before the store exists; if it does not fit, the store is not
 * made and the worker gets a RangeError.
 *
 * Maximums are what make the charge bounded: a resizable ArrayBuffer or a Wasm memory may reach at
 * most half the worker's limit (or its initial size, when larger); a Wasm memory that declares no
 * maximum, or a larger one, gets that cap (`planMemories` rewrites modules; `memory.grow` inside
 * Wasm is then refused by V8 past it). Each Wasm memory is charged at least MIN_WASM_CHARGE (or the cap,
 * in a worker too small for that), as V8 reserves gigabytes of address space for each one, shared by
 * the whole process.
 *
 * Everything used after tenant code may have run is captured at load: the tenant can patch the
 * globals and prototypes, but never reach the original constructors or the ballasts.
 */
import { planMemories, WASM_PAGE } from './wasm.ts';

export const MIN_WASM_CHARGE = 8 * 1024 * 1024;
const MiB = 1024 * 1024;

const OrigAB = ArrayBuffer;
const ABProto = OrigAB.prototype;
const origTransfer = ABProto.transfer;
const apply = Reflect.apply;
const construct = Reflect.construct;
const ownKeys = Reflect.ownKeys;
const create = Object.create;
const defineProperty = Object.defineProperty;
const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
const TypeErr = TypeError;
const RangeErr = RangeError;
const PromiseCtor = Promise;
const promiseResolve = Promise.resolve;
const promiseReject = Promise.reject;
const WeakMapCtor = WeakMap;
const wmGet = WeakMap.prototype.get;
const wmSet = WeakMap.prototype.set;

/** The parts of the WebAssembly namespace used here (the project's TypeScript libs declare no value). */
export interface WasmApi {
  Module: {
    new (bytes: Uint8Array): WebAssembly.Module;
    exports(m: WebAssembly.Module): unknown;
    imports(m: WebAssembly.Module): unknown;
    customSections(m: WebAssembly.Module, name: string): unknown;
    prototype: object;
  };
  Memory: { new (descriptor: object): object; prototype: object };
  Instance: { new (module: WebAssembly.Module, imports?: object): object; prototype: object };
  CompileError: new (message: string) => Error;
  validate: (...args: unknown[]) => unknown;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
const OrigModule = WA.Module;
const OrigMemory = WA.Memory;
const OrigInstance = WA.Instance;
const CompileErr = WA.CompileError;
const bufferDescriptor = getOwnPropertyDescriptor(OrigMemory.prototype, 'buffer')!;
const origBuffer = bufferDescriptor.get!;
const origExports = getOwnPropertyDescriptor(OrigInstance.prototype, 'exports')!.get!;

/** Holder (a buffer, a memory, an instance) → the ballast that pays for the store it keeps alive. */
const ballasts = new WeakMapCtor<object, ArrayBuffer>();
/** Module (compiled here) → the bytes each instance of it is charged for its own memories. */
const moduleCharges = new WeakMapCtor<object, number>();
const ballastOf = (holder: unknown): ArrayBuffer | undefined => apply(wmGet, ballasts, [holder]) as ArrayBuffer | undefined;
const hold = (holder: object, ballast: ArrayBuffer): void => void apply(wmSet, ballasts, [holder, ballast]);

let limitBytes = 0;
let capBytes = 0;
let capPages = 0;
/** What a Wasm memory is charged at least: MIN_WASM_CHARGE, or the cap in a worker too small for it. */
let wasmFloor = MIN_WASM_CHARGE;

/** The worker's memory limit, in bytes: what maximums are capped against (set once, before tenant code). */
export function setMemoryLimit(bytes: number): void {
  limitBytes = bytes;
  capBytes = bytes / 2 - ((bytes / 2) % WASM_PAGE);
  capPages = capBytes / WASM_PAGE;
  wasmFloor = capBytes < MIN_WASM_CHARGE ? capBytes : MIN_WASM_CHARGE;
}

/** The charge for `bytes`, or a RangeError naming what did not fit. */
function reserve(bytes: number, what: string): ArrayBuffer {
  try {
    return new OrigAB(bytes);
  } catch {
    const mib = bytes / MiB;
    throw new RangeErr(
      `${what} (${mib - (mib % 1) + (mib % 1 > 0 ? 1 : 0)} MiB) does not fit in what is left of this worker's memory limit of ${limitBytes / MiB} MB`,
    );
  }
}

/** ToIndex, with one coercion of the tenant's value (and operators only). */
function toIndex(v: unknown, what: string): number {
  const n = +(v as number);
  const i = n !== n ? 0 : n - (n % 1);
  if (!(i >= 0 && i <= 9007199254740991)) throw new RangeErr(`${what} is out of range`);
  return i;
}

/** WebIDL [EnforceRange] unsigned long, with one coercion. */
function toPages(v: unknown, what: string): number {
  const n = +(v as number);
  if (n !== n || n === Infinity || n === -Infinity) throw new TypeErr(`WebAssembly.Memory(): ${what} must be convertible to a number`);
  const i = n - (n % 1);
  if (i < 0 || i > 4294967295) throw new TypeErr(`WebAssembly.Memory(): ${what} is outside the unsigned 32-bit range`);
  return i;
}

function defineHidden(target: object, key: PropertyKey, value: unknown): void {
  defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

/** A constructor stand-in that is the original for `instanceof`, `.prototype` and its statics. */
function standIn(wrapper: object, original: object, statics: PropertyKey[]): void {
  defineProperty(wrapper, 'prototype', { value: (original as { prototype: object }).prototype, writable: false, enumerable: false, configurable: false });
  for (let i = 0; i < statics.length; i++) {
    const d = getOwnPropertyDescriptor(original, statics[i]!);
    if (d) defineProperty(wrapper, statics[i]!, d);
  }
  defineHidden((original as { prototype: object }).prototype, 'constructor', wrapper);
}

/** Compiles a module whose memories are capped and charged per instance; or why it is refused. */
export function compileCharged(bytes: Uint8Array, newTarget: unknown = OrigModule): WebAssembly.Module | string {
  const plan = planMemories(bytes, capPages);
  if (typeof plan === 'string') return plan;
  const module = construct(OrigModule, [plan.bytes], newTarget as typeof OrigModule) as WebAssembly.Module;
  const floor = plan.count * wasmFloor;
  apply(wmSet, moduleCharges, [module, plan.maxBytes > floor ? plan.maxBytes : floor]);
  return module;
}

/** Like compileCharged, throwing a CompileError when refused. */
export function compileOrThrow(bytes: Uint8Array, newTarget?: unknown): WebAssembly.Module {
  const module = compileCharged(bytes, newTarget);
  if (typeof module === 'string') throw new CompileErr(module);
  return module;
}

/** A new instance of a module compiled here, its own memories charged first (synchronously, so nothing can come between). */
export function newInstance(module: unknown, imports: unknown, newTarget: unknown = OrigInstance): object {
  const charge = apply(wmGet, moduleCharges, [module]) as number | undefined;
  if (charge === undefined) throw new TypeErr('WebAssembly.Instance(): Argument 0 must be a WebAssembly.Module compiled by this worker');
  const ballast = charge > 0 ? reserve(charge, 'WebAssembly.Instance(): the memory this module defines, at its maximum') : undefined;
  const instance = construct(OrigInstance, [module, imports], newTarget as typeof OrigInstance) as object;
  if (!ballast) return instance;
  hold(instance, ballast);
  // Its memories may outlive it through its exports: each exported one it defined pays the same ballast.
  const exports = apply(origExports, instance, []) as Record<PropertyKey, unknown>;
  const keys = ownKeys(exports);
  for (let i = 0; i < keys.length; i++) {
    const v = exports[keys[i]!];
    if (v === null || typeof v !== 'object' || ballastOf(v) !== undefined) continue;
    try {
      apply(origBuffer, v, []); // a memory (anything else throws)
      hold(v, ballast);
    } catch {
      // not a memory
    }
  }
  return instance;
}

/** `WebAssembly.instantiate(module)`: the instance made (and charged) at once, handed back as a promise. */
export function instantiateModule(module: unknown, imports: unknown): Promise<object> {
  try {
    return apply(promiseResolve, PromiseCtor, [newInstance(module, imports)]) as Promise<object>;
  } catch (e) {
    return apply(promiseReject, PromiseCtor, [e]) as Promise<object>;
  }
}

/** Replaces ArrayBuffer, WebAssembly.Memory and WebAssembly.Instance with charging stand-ins. */
export function installMemoryCharges(g: Record<string, unknown>): void {
  const ArrayBufferCharged = function ArrayBuffer(this: unknown, length: unknown, options?: unknown) {
    if (new.target === undefined) throw new TypeErr("Constructor ArrayBuffer requires 'new'");
    const max = options !== null && typeof options === 'object' ? (options as { maxByteLength?: unknown }).maxByteLength : undefined;
    if (max === undefined) return construct(OrigAB, [length], new.target);
    const len = toIndex(length, 'ArrayBuffer length');
    const requested = toIndex(max, 'ArrayBuffer maxByteLength');
    if (len > requested) throw new RangeErr('Invalid array buffer max length');
    const ceiling = len > capBytes ? len : capBytes;
    const maxByteLength = requested < ceiling ? requested : ceiling;
    const ballast = maxByteLength > 0 ? reserve(maxByteLength, 'new ArrayBuffer(): a resizable ArrayBuffer, at its maxByteLength') : undefined;
    const clean = create(null) as { maxByteLength: number };
    clean.maxByteLength = maxByteLength;
    const buffer = construct(OrigAB, [len, clean], new.target) as ArrayBuffer;
    if (ballast) hold(buffer, ballast);
    return buffer;
  };
  standIn(ArrayBufferCharged, OrigAB, ['length', 'name', 'isView', Symbol.species]);
  defineHidden(g, 'ArrayBuffer', ArrayBufferCharged);
  // A resizable buffer transferred keeps its maximum: the new one pays with the old one's ballast.
  defineHidden(ABProto, 'transfer', function transfer(this: ArrayBuffer, ...args: unknown[]) {
    const ballast = ballastOf(this);
    const out = apply(origTransfer, this, args) as ArrayBuffer;
    if (ballast) hold(out, ballast);
    return out;
  });

  // Shared memory refused always (it would hand out SharedArrayBuffers), and 64-bit memories.
  const Memory = function Memory(this: unknown, descriptor: unknown) {
    if (new.target === undefined) throw new TypeErr("WebAssembly.Memory must be invoked with 'new'");
    if (descriptor === null || typeof descriptor !== 'object') throw new TypeErr('WebAssembly.Memory(): Argument 0 must be a memory descriptor');
    const d = descriptor as Record<string, unknown>;
    const address = d.address !== undefined ? d.address : d.index; // each read once
    const initial = d.initial !== undefined ? d.initial : d.minimum;
    const maximum = d.maximum;
    if (d.shared) throw new TypeErr('WebAssembly.Memory(): shared memory is disallowed');
    if (address !== undefined && `${address as string}` !== 'i32') throw new TypeErr('WebAssembly.Memory(): 64-bit memories are not supported');
    if (initial === undefined) throw new TypeErr("WebAssembly.Memory(): Property 'initial' is required");
    const init = toPages(initial, 'initial');
    const declared = maximum === undefined ? -1 : toPages(maximum, 'maximum');
    if (declared >= 0 && declared < init) throw new RangeErr("WebAssembly.Memory(): Property 'maximum' is below 'initial'");
    const ceiling = init > capPages ? init : capPages;
    const pages = declared >= 0 && declared <= ceiling ? declared : ceiling;
    const ballast = reserve(pages * WASM_PAGE > wasmFloor ? pages * WASM_PAGE : wasmFloor, 'new WebAssembly.Memory(): the memory, at its maximum');
    const clean = create(null) as { initial: number; maximum: number };
    clean.initial = init;
    clean.maximum = pages;
    const memory = construct(OrigMemory, [clean], new.target) as object;
    hold(memory, ballast);
    return memory;
  };
  standIn(Memory, OrigMemory, ['length', 'name']);
  defineHidden(WA, 'Memory', Memory);
  // A memory's buffer keeps its store alive on its own: it pays with the memory's ballast.
  const buffer = function buffer(this: object) {
    const b = apply(origBuffer, this, []) as ArrayBuffer;
    const ballast = ballastOf(this);
    if (ballast) hold(b, ballast);
    return b;
  };
  defineProperty(buffer, 'name', { value: 'get buffer' });
  defineProperty(OrigMemory.prototype, 'buffer', { get: buffer, set: undefined, enumerable: bufferDescriptor.enumerable!, configurable: true });

  const Instance = function Instance(this: unknown, module: unknown, imports?: unknown) {
    if (new.target === undefined) throw new TypeErr("WebAssembly.Instance must be invoked with 'new'");
    return newInstance(module, imports, new.target);
  };
  standIn(Instance, OrigInstance, ['length', 'name']);
  defineHidden(WA, 'Instance', Instance);
}
