/**
 * What Workers forbids, removed before any tenant code runs:
 * - shared memory and Atomics (a high-resolution timer), WeakRef and FinalizationRegistry (their
 *   callbacks run outside every timeout);
 * - code generation from strings: `eval`, `Function` and the `.constructor` of every function kind
 *   (isolated-vm allows them in every context), unless the worker was deployed with allowEval;
 * - WebAssembly compiled from bytes at run time; modules shipped with the worker are compiled by the
 *   loader with the original constructor kept here (`compileShipped`);
 * - shared and 64-bit WebAssembly memory, in every mode;
 * - memory outside the worker's limit: resizable ArrayBuffers and WebAssembly memories are charged
 *   against it (memory-charge.ts).
 */
import { wasmProblem } from './wasm.ts';
import { compileCharged, compileOrThrow, installMemoryCharges, instantiateModule, newInstance, setMemoryLimit, type WasmApi } from './memory-charge.ts';

const U8 = Uint8Array;
const apply = Reflect.apply;
const WA = (globalThis as unknown as { WebAssembly: WasmApi & Record<string, unknown> }).WebAssembly;
const OrigModule = WA.Module;
const origValidate = WA.validate;
const moduleExports = OrigModule.exports;
const isView = ArrayBuffer.isView;
const TypedArrayProto = Object.getPrototypeOf(U8.prototype) as object;
const getter = (o: object, key: string) => Object.getOwnPropertyDescriptor(o, key)!.get!;
const taBuffer = getter(TypedArrayProto, 'buffer');
const taByteOffset = getter(TypedArrayProto, 'byteOffset');
const taByteLength = getter(TypedArrayProto, 'byteLength');
const taLength = getter(TypedArrayProto, 'length');
const taSet = U8.prototype.set;
const dvBuffer = getter(DataView.prototype, 'buffer');
const dvByteOffset = getter(DataView.prototype, 'byteOffset');
const dvByteLength = getter(DataView.prototype, 'byteLength');
const abByteLength = getter(ArrayBuffer.prototype, 'byteLength');
/** A DataView (its getters), rather than a typed array. */
function isDataView(v: object): boolean {
  try {
    apply(dvByteLength, v, []);
    return true;
  } catch {
    return false;
  }
}
const PromiseCtor = Promise;
const promiseReject = Promise.reject;
const promiseResolve = Promise.resolve;

export const CODEGEN_REFUSED = 'Code generation from strings is disallowed for this worker';
const WASM_REFUSED = 'Compiling WebAssembly from bytes at run time is disallowed; ship .wasm modules with the worker';

/**
 * A private copy of the bytes a caller handed in (so nothing can change them between check and
 * compile), made with captured built-ins only: `slice` would consult a species constructor the tenant
 * may have replaced, and the view's own getters may be patched.
 */
function ownBytes(source: unknown): Uint8Array {
  let view: Uint8Array;
  if (isView(source)) {
    const v = source as ArrayBufferView;
    view = new U8(
      apply(isDataView(v) ? dvBuffer : taBuffer, v, []) as ArrayBuffer,
      apply(isDataView(v) ? dvByteOffset : taByteOffset, v, []) as number,
      apply(isDataView(v) ? dvByteLength : taByteLength, v, []) as number,
    );
  } else {
    try {
      apply(abByteLength, source, []); // an ArrayBuffer (anything else throws)
    } catch {
      throw new TypeError('WebAssembly: expected an ArrayBuffer or a typed array of module bytes');
    }
    view = new U8(source as ArrayBuffer);
  }
  const copy = new U8(apply(taLength, view, []) as number);
  apply(taSet, copy, [view]);
  return copy;
}

/** Is `value` a genuine WebAssembly.Module (not a look-alike with the right prototype)? */
function isModule(value: unknown): value is WebAssembly.Module {
  try {
    moduleExports(value as WebAssembly.Module);
    return true;
  } catch {
    return false;
  }
}

/** The loader's compiler for modules shipped with the worker (refused: shared or 64-bit memory; memories capped). */
export function compileShipped(bytes: Uint8Array): WebAssembly.Module | string {
  try {
    return compileCharged(bytes);
  } catch (e) {
    return `invalid WebAssembly module: ${(e as Error).message}`;
  }
}

function defineHidden(target: object, key: PropertyKey, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

/** A promise for `run()`'s value, or rejected with what it threw (captured built-ins only). */
function promised<T>(run: () => T): Promise<T> {
  try {
    return apply(promiseResolve, PromiseCtor, [run()]) as Promise<T>;
  } catch (e) {
    return apply(promiseReject, PromiseCtor, [e]) as Promise<T>;
  }
}

/** `memoryLimitBytes`: the worker's memory limit, which every backing store it makes is charged against (memory-charge.ts). */
export function lockdown(g: Record<string, unknown>, allowEval: boolean, memoryLimitBytes: number): void {
  for (const name of ['SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry']) delete g[name];
  setMemoryLimit(memoryLimitBytes);
  installMemoryCharges(g);

  if (!allowEval) {
    const refuse = () => {
      throw new EvalError(CODEGEN_REFUSED);
    };
    for (const fn of [() => {}, async () => {}, function* () {}, async function* () {}]) {
      Object.defineProperty(Object.getPrototypeOf(fn), 'constructor', { value: refuse, writable: false, configurable: false });
    }
    Object.defineProperty(refuse, 'prototype', { value: Function.prototype });
    g.Function = refuse;
    g.eval = refuse;

    for (const name of ['compile', 'instantiate', 'compileStreaming', 'instantiateStreaming', 'validate']) delete WA[name];
    // Instantiating a module the worker shipped stays possible, synchronously or not; bytes are refused.
    defineHidden(WA, 'instantiate', function instantiate(source: unknown, imports?: object) {
      if (!isModule(source)) return apply(promiseReject, PromiseCtor, [new EvalError(WASM_REFUSED)]);
      return instantiateModule(source, imports);
    });
    const Module = function Module() {
      throw new EvalError(WASM_REFUSED);
    };
    Object.defineProperty(Module, 'prototype', { value: OrigModule.prototype });
    for (const name of ['exports', 'imports', 'customSections'] as const) defineHidden(Module, name, OrigModule[name]);
    Object.defineProperty(OrigModule.prototype, 'constructor', { value: Module, writable: false, configurable: false });
    defineHidden(WA, 'Module', Module);
  } else {
    // Code generation allowed: WebAssembly from bytes too, but never with shared memory, always charged.
    const Module = function Module(this: unknown, bytes: unknown) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
      return compileOrThrow(ownBytes(bytes), new.target);
    };
    Object.defineProperty(Module, 'prototype', { value: OrigModule.prototype });
    for (const name of ['exports', 'imports', 'customSections'] as const) defineHidden(Module, name, OrigModule[name]);
    defineHidden(OrigModule.prototype, 'constructor', Module);
    defineHidden(WA, 'Module', Module);
    defineHidden(WA, 'compile', function compile(bytes: unknown) {
      return promised(() => compileOrThrow(ownBytes(bytes)));
    });
    defineHidden(WA, 'validate', function validate(bytes: unknown) {
      const own = ownBytes(bytes);
      return wasmProblem(own) === null && (apply(origValidate, WA, [own]) as boolean);
    });
    // Compiled and instantiated at once: nothing the tenant patched (Promise.prototype.then) runs in between.
    defineHidden(WA, 'instantiate', function instantiate(source: unknown, imports?: object) {
      if (isModule(source)) return instantiateModule(source, imports);
      return promised(() => {
        const module = compileOrThrow(ownBytes(source));
        return { module, instance: newInstance(module, imports) };
      });
    });
    for (const name of ['compileStreaming', 'instantiateStreaming']) delete WA[name];
  }
}
