/** Blob and File: bytes held whole (a Worker's bodies cross the isolate boundary as bytes anyway). */
import { TextDecoder, TextEncoder } from './encoding.ts';
import type { ReadableStream } from 'web-streams-polyfill';
import { streams } from './streams.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const U8 = Uint8Array;

type BlobPart = string | ArrayBuffer | ArrayBufferView | Blob;

export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new U8(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

export class Blob {
  readonly #bytes: Uint8Array;
  readonly #type: string;
  constructor(parts: BlobPart[] = [], options: { type?: string } = {}) {
    this.#bytes = concat(
      [...parts].map((p) => {
        if (p instanceof Blob) return p.#bytes;
        if (p instanceof ArrayBuffer) return new U8(p.slice(0));
        if (ArrayBuffer.isView(p)) return new U8(p.buffer.slice(p.byteOffset, p.byteOffset + p.byteLength) as ArrayBuffer);
        return encoder.encode(String(p));
      }),
    );
    const type = String(options.type ?? '');
    this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : '';
  }
  get size(): number {
    return this.#bytes.byteLength;
  }
  get type(): string {
    return this.#type;
  }
  async arrayBuffer(): Promise<ArrayBuffer> {
    return this.#bytes.slice().buffer as ArrayBuffer;
  }
  async bytes(): Promise<Uint8Array> {
    return this.#bytes.slice();
  }
  async text(): Promise<string> {
    return decoder.decode(this.#bytes);
  }
  /** The bytes as one chunk (a copy: the Blob stays immutable whatever the reader does with it). */
  stream(): ReadableStream<Uint8Array> {
    const bytes = this.#bytes.slice();
    return new (streams().ReadableStream)<Uint8Array>({
      start(controller) {
        if (bytes.byteLength > 0) controller.enqueue(bytes);
        controller.close();
      },
    });
  }
  slice(start = 0, end = this.size, type = ''): Blob {
    return new Blob([this.#bytes.slice(start, end)], { type });
  }
  /** The bytes, for the runtime. */
  static peek(b: Blob): Uint8Array {
    return b.#bytes;
  }
}

export class File extends Blob {
  readonly name: string;
  readonly lastModified: number;
  constructor(parts: BlobPart[], name: string, options: { type?: string; lastModified?: number } = {}) {
    super(parts, options);
    this.name = String(name);
    this.lastModified = options.lastModified ?? Date.now();
  }
}
