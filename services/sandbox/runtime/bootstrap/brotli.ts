/**
 * The Brotli codec's WebAssembly for node:zlib (cli/node-polyfills/brotli.ts, bundled into the workers that
 * import node:zlib). Not in the snapshot nor compiled at start: the host hands over the ~1 MB of bytes
 * on an isolate's first Brotli call, compiled then with the charged compiler the lockdown keeps for the
 * runtime's own modules (cheaply: the host compiled the same bytes once, and V8 shares that across
 * isolates). The memory of each instance is charged to the worker's limit as any wasm memory is.
 */
import { compileOrThrow } from './memory-charge.ts';

let wasmBytes: (() => ArrayBuffer) | undefined;
let compiled: WebAssembly.Module | undefined;

/** Set by the init half (index.ts) with the host's callback. */
export function setBrotliWasm(fn: () => ArrayBuffer): void {
  wasmBytes = fn;
}

/** The compiled codec, the same module for every call in this isolate. */
export function brotliModule(): WebAssembly.Module {
  compiled ??= compileOrThrow(new Uint8Array(wasmBytes!()));
  return compiled;
}
