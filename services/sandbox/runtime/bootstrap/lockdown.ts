/**
 * What Workers forbids, removed before any tenant code runs:
 * - shared memory and Atomics (a high-resolution timer), WeakRef and FinalizationRegistry (their
 *   callbacks run outside every timeout: security notes F2, F7);
 * - code generation from strings: `eval`, `Function` and the `.constructor` of every function kind
 *   (F6), unless the worker was deployed with allowEval;
 * - WebAssembly compiled from bytes at run time; modules shipped with the worker are compiled by the
 *   loader with the original constructor kept here (`compileShipped`);
 * - shared WebAssembly memory, in every mode.
 */
import { wasmProblem } from './wasm.ts';

const U8 = Uint8Array;
const apply = Reflect.apply;
const construct = Reflect.construct;
/** The parts of the WebAssembly namespace used here (the project's TypeScript libs declare no value). */
interface WasmApi {
  Module: { new (bytes: Uint8Array): WebAssembly.Module; exports(m: WebAssembly.Module): unknown; imports(m: WebAssembly.Module): unknown; customSections(m: WebAssembly.Module, name: string): unknown; prototype: object };
  Memory: { new (descriptor: object): unknown; prototype: object };
  CompileError: new (message: string) => Error;
  instantiate: (...args: unknown[]) => unknown;
  compile: (...args: unknown[]) => unknown;
  validate: (...args: unknown[]) => unknown;
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
const OrigModule = WA.Module;
const OrigMemory = WA.Memory;
const origInstantiate = WA.instantiate;
const origCompile = WA.compile;
const origValidate = WA.validate;
const moduleExports = OrigModule.exports;
const isView = ArrayBuffer.isView;
const taSlice = Uint8Array.prototype.slice;
const CompileError = WA.CompileError;

export const CODEGEN_REFUSED = 'Code generation from strings is disallowed for this worker';
const WASM_REFUSED = 'Compiling WebAssembly from bytes at run time is disallowed; ship .wasm modules with the worker';

/** A private copy of the bytes a caller handed in (so nothing can change them between check and compile). */
function ownBytes(source: unknown): Uint8Array {
  if (source instanceof ArrayBuffer) return apply(taSlice, new U8(source), []) as Uint8Array;
  if (isView(source)) return apply(taSlice, new U8((source as ArrayBufferView).buffer, (source as ArrayBufferView).byteOffset, (source as ArrayBufferView).byteLength), []) as Uint8Array;
  throw new TypeError('WebAssembly: expected an ArrayBuffer or a typed array of module bytes');
}

function checked(source: unknown): Uint8Array {
  const bytes = ownBytes(source);
  const problem = wasmProblem(bytes);
  if (problem) throw new CompileError(problem);
  return bytes;
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

/** The loader's compiler for modules shipped with the worker (checked for shared memory first). */
export function compileShipped(bytes: Uint8Array): WebAssembly.Module | string {
  const problem = wasmProblem(bytes);
  if (problem) return problem;
  try {
    return new OrigModule(bytes);
  } catch (e) {
    return `invalid WebAssembly module: ${(e as Error).message}`;
  }
}

function defineHidden(target: object, key: PropertyKey, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

export function lockdown(g: Record<string, unknown>, allowEval: boolean): void {
  for (const name of ['SharedArrayBuffer', 'Atomics', 'WeakRef', 'FinalizationRegistry']) delete g[name];

  // Shared memory refused always: it would hand out SharedArrayBuffers.
  const Memory = function Memory(this: unknown, descriptor: Record<string, unknown>) {
    if (new.target === undefined) throw new TypeError("WebAssembly.Memory must be invoked with 'new'");
    if (descriptor === null || typeof descriptor !== 'object') throw new TypeError('WebAssembly.Memory(): Argument 0 must be a memory descriptor');
    const clean: Record<string, unknown> = {};
    for (const key of ['initial', 'minimum', 'maximum', 'address', 'index']) {
      const v = descriptor[key]; // each read once
      if (v !== undefined) clean[key] = v;
    }
    if (descriptor.shared) throw new TypeError('WebAssembly.Memory(): shared memory is disallowed');
    return construct(OrigMemory, [clean], new.target);
  };
  Object.defineProperty(Memory, 'prototype', { value: OrigMemory.prototype });
  defineHidden(OrigMemory.prototype, 'constructor', Memory);
  defineHidden(WA, 'Memory', Memory);

  if (!allowEval) {
    const refuse = function () {
      throw new EvalError(CODEGEN_REFUSED);
    };
    for (const fn of [function () {}, async function () {}, function* () {}, async function* () {}]) {
      Object.defineProperty(Object.getPrototypeOf(fn), 'constructor', { value: refuse, writable: false, configurable: false });
    }
    Object.defineProperty(refuse, 'prototype', { value: Function.prototype });
    g.Function = refuse;
    g.eval = refuse;

    for (const name of ['compile', 'instantiate', 'compileStreaming', 'instantiateStreaming', 'validate']) delete (WA as unknown as Record<string, unknown>)[name];
    // Instantiating a module the worker shipped stays possible, synchronously or not; bytes are refused.
    defineHidden(WA, 'instantiate', function instantiate(source: unknown, imports?: object) {
      if (!isModule(source)) return Promise.reject(new EvalError(WASM_REFUSED));
      return apply(origInstantiate, WA, [source, imports]);
    });
    const Module = function Module() {
      throw new EvalError(WASM_REFUSED);
    };
    Object.defineProperty(Module, 'prototype', { value: OrigModule.prototype });
    for (const name of ['exports', 'imports', 'customSections'] as const) defineHidden(Module, name, OrigModule[name]);
    Object.defineProperty(OrigModule.prototype, 'constructor', { value: Module, writable: false, configurable: false });
    defineHidden(WA, 'Module', Module);
  } else {
    // Code generation allowed: WebAssembly from bytes too, but never with shared memory.
    const Module = function Module(this: unknown, bytes: unknown) {
      if (new.target === undefined) throw new TypeError("WebAssembly.Module must be invoked with 'new'");
      return construct(OrigModule, [checked(bytes)], new.target);
    };
    Object.defineProperty(Module, 'prototype', { value: OrigModule.prototype });
    for (const name of ['exports', 'imports', 'customSections'] as const) defineHidden(Module, name, OrigModule[name]);
    defineHidden(OrigModule.prototype, 'constructor', Module);
    defineHidden(WA, 'Module', Module);
    defineHidden(WA, 'compile', async function compile(bytes: unknown) {
      return apply(origCompile, WA, [checked(bytes)]);
    });
    defineHidden(WA, 'validate', function validate(bytes: unknown) {
      const own = ownBytes(bytes);
      return wasmProblem(own) === null && (apply(origValidate, WA, [own]) as boolean);
    });
    defineHidden(WA, 'instantiate', async function instantiate(source: unknown, imports?: object) {
      return apply(origInstantiate, WA, [isModule(source) ? source : checked(source), imports]);
    });
    for (const name of ['compileStreaming', 'instantiateStreaming']) delete (WA as unknown as Record<string, unknown>)[name];
  }
}
