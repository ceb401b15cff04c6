/**
 * HTMLRewriter, as Workers has it: lol-html (Cloudflare's streaming HTML rewriter) compiled to
 * WebAssembly, from html-rewriter-wasm, which also makes async handlers work (Binaryen's asyncify).
 * It runs in the worker's isolate: its CPU and its wasm memory are the worker's, charged to its
 * limits. The ~0.9 MB of wasm is not in the start-up snapshot: the host hands the bytes over on the
 * first `transform()` in an isolate, compiled then with the built-in the lockdown kept for the runtime's
 * own modules (cheaply: the host compiled the same bytes once, and V8 shares that across isolates) (bootstrap-bundle.ts points the package's `fs`, `util` and `assert` at this file's stand-ins).
 *
 * `transform(response)` returns a new Response whose body is rewritten as it is read: each chunk goes
 * through lol-html as it arrives (its handlers run then, and may be async), as in workerd.
 */
import type { TransformStreamDefaultController } from 'web-streams-polyfill';
import { TextDecoder, TextEncoder } from './encoding.ts';
import { Headers, Response } from './fetch-api.ts';
import { streams } from './streams.ts';
import { compileOrThrow, newInstance } from './memory-charge.ts';

type Handlers = Record<string, unknown>;
interface WasmRewriter {
  on(selector: string, handlers: Handlers): void;
  onDocument(handlers: Handlers): void;
  write(chunk: Uint8Array): Promise<void>;
  end(): Promise<void>;
  free(): void;
}
type WasmRewriterCtor = new (output: (chunk: Uint8Array) => void, options?: { enableEsiTags?: boolean }) => WasmRewriter;

let wasmBytes: (() => ArrayBuffer) | undefined;
/** Set by the init half (index.ts) with the host's callback. */
export function setHtmlRewriterWasm(fn: () => ArrayBuffer): void {
  wasmBytes = fn;
}

/** Stand-ins for what html-rewriter-wasm's glue requires from Node (bootstrap-bundle.ts maps them here). */
export const nodeStandIns = {
  fs: { readFileSync: () => new Uint8Array(wasmBytes!()) },
  util: { TextDecoder, TextEncoder },
  assert: Object.assign(
    (ok: unknown, message?: string) => {
      if (!ok) throw new Error(message ?? 'HTMLRewriter: internal assertion failed');
    },
    {
      strictEqual: (a: unknown, b: unknown) => {
        if (a !== b) throw new Error('HTMLRewriter: internal assertion failed');
      },
    },
  ),
  webAssembly: { Module: compileOrThrow, Instance: newInstance },
};

let Rewriter: WasmRewriterCtor | undefined;
function rewriterClass(): WasmRewriterCtor {
  // Evaluated (and the wasm compiled) on first use only: esbuild keeps a require() in a function lazy.
  Rewriter ??= (require('html-rewriter-wasm') as { HTMLRewriter: WasmRewriterCtor }).HTMLRewriter;
  return Rewriter;
}

const ELEMENT_HANDLERS = ['element', 'comments', 'text'];
const DOCUMENT_HANDLERS = ['doctype', 'comments', 'text', 'end'];

/** A handler object as lol-html takes it: only the members it names, each a function, bound to its object. */
function handlersOf(h: unknown, names: string[], what: string): Handlers {
  if (typeof h !== 'object' || h === null) throw new TypeError(`${what}: the handlers must be an object`);
  const out: Handlers = {};
  for (const name of names) {
    const fn = (h as Record<string, unknown>)[name];
    if (fn === undefined) continue;
    if (typeof fn !== 'function') throw new TypeError(`${what}: ${name} must be a function`);
    out[name] = (...args: unknown[]) => Reflect.apply(fn, h, args);
  }
  return out;
}

export class HTMLRewriter {
  readonly #handlers: ({ selector: string; handlers: Handlers } | { document: Handlers })[] = [];

  on(selector: string, handlers: unknown): this {
    this.#handlers.push({ selector: String(selector), handlers: handlersOf(handlers, ELEMENT_HANDLERS, 'HTMLRewriter.on') });
    return this;
  }

  onDocument(handlers: unknown): this {
    this.#handlers.push({ document: handlersOf(handlers, DOCUMENT_HANDLERS, 'HTMLRewriter.onDocument') });
    return this;
  }

  transform(response: unknown): Response {
    if (!(response instanceof Response)) throw new TypeError('HTMLRewriter.transform() takes a Response');
    const body = response.body;
    // Nothing to rewrite: the same status, headers and (absent) body, as workerd.
    if (body === null) return new Response(null, response);
    const Ctor = rewriterClass();
    const registered = [...this.#handlers];
    let rewriter: WasmRewriter | undefined;
    // lol-html hands its output over in many small pieces: gathered, they go downstream once per input chunk.
    let pieces: Uint8Array[] = [];
    let size = 0;
    const flushPieces = (controller: TransformStreamDefaultController<Uint8Array>) => {
      if (size === 0) return;
      const out = new Uint8Array(size);
      let at = 0;
      for (const p of pieces) {
        out.set(p, at);
        at += p.byteLength;
      }
      pieces = [];
      size = 0;
      controller.enqueue(out);
    };
    const open = () => {
      const r = new Ctor((chunk) => {
        if (chunk.byteLength === 0) return;
        pieces.push(chunk.slice());
        size += chunk.byteLength;
      });
      for (const h of registered) {
        if ('selector' in h) r.on(h.selector, h.handlers);
        else r.onDocument(h.document);
      }
      return r;
    };
    const done = () => {
      rewriter?.free();
      rewriter = undefined;
    };
    const stream = new (streams().TransformStream)<Uint8Array, Uint8Array>({
      async transform(chunk, controller) {
        if (!(chunk instanceof Uint8Array)) throw new TypeError('HTMLRewriter: the body must give Uint8Array chunks');
        rewriter ??= open();
        try {
          await rewriter.write(chunk);
        } catch (e) {
          done();
          throw e;
        }
        flushPieces(controller);
      },
      async flush(controller) {
        rewriter ??= open();
        try {
          await rewriter.end();
        } finally {
          done();
        }
        flushPieces(controller);
      },
    });
    const headers = new Headers(response.headers);
    // The length of the rewritten body is not known ahead.
    headers.delete('content-length');
    return new Response(body.pipeThrough(stream), { status: response.status, statusText: response.statusText, headers });
  }
}

declare function require(id: string): unknown;
