/**
 * Event, EventTarget and the web streams from well-kept spec-conformant libraries
 * (event-target-shim, web-streams-polyfill), and AbortController/AbortSignal on top of EventTarget
 * (the only glue written here), the stream classes of Workers built on them, navigator, and URLPattern
 * (urlpattern-polyfill).
 */
import { Event, EventTarget } from 'event-target-shim';
import { ByteLengthQueuingStrategy, CountQueuingStrategy, ReadableStream, TransformStream, WritableStream } from 'web-streams-polyfill';
import { DOMException } from './encoding.ts';
import { URLPattern } from 'urlpattern-polyfill/urlpattern';
export { CompressionStream, DecompressionStream } from './compression.ts';
export { FixedLengthStream, IdentityTransformStream, TextDecoderStream, TextEncoderStream } from './byte-streams.ts';
export { URLPattern };
export { Navigator, navigator } from './navigator.ts';

const SECRET = Symbol('construct');

export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason: unknown = undefined;
  onabort: ((event: Event) => void) | null = null;

  constructor(key?: symbol) {
    super();
    if (key !== SECRET) throw new TypeError('Illegal constructor: use new AbortController().signal');
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): unknown {
    return this.#reason;
  }
  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }
  /** @internal for AbortController */
  static signal(signal: AbortSignal, reason: unknown): void {
    if (signal.#aborted) return;
    signal.#aborted = true;
    signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    const event = new Event('abort');
    signal.onabort?.call(signal, event);
    signal.dispatchEvent(event);
  }
  static abort(reason?: unknown): AbortSignal {
    const s = new AbortSignal(SECRET);
    AbortSignal.signal(s, reason);
    return s;
  }
  /** Aborted when the first of `signals` is, with its reason. */
  static any(signals: Iterable<AbortSignal>): AbortSignal {
    const list = [...signals];
    for (const s of list) if (!(s instanceof AbortSignal)) throw new TypeError('AbortSignal.any takes an iterable of AbortSignal');
    const out = new AbortSignal(SECRET);
    const done = list.find((s) => s.#aborted);
    if (done) {
      AbortSignal.signal(out, done.#reason);
      return out;
    }
    const follow = (s: AbortSignal) => () => AbortSignal.signal(out, s.#reason);
    for (const s of list) s.addEventListener('abort', follow(s), { once: true });
    return out;
  }
  static timeout(ms: number): AbortSignal {
    const s = new AbortSignal(SECRET);
    setTimeout(() => AbortSignal.signal(s, new DOMException('The operation timed out', 'TimeoutError')), ms);
    return s;
  }
}

export class AbortController {
  readonly signal = new AbortSignal(SECRET);
  abort(reason?: unknown): void {
    AbortSignal.signal(this.signal, reason);
  }
}

export { ByteLengthQueuingStrategy, CountQueuingStrategy, Event, EventTarget, ReadableStream, TransformStream, WritableStream };
