/**
 * Event and EventTarget from a well-kept spec-conformant library (event-target-shim), and
 * AbortController/AbortSignal on top of EventTarget (the only glue written here), the stream classes of
 * Workers built on the web streams (web-streams-polyfill, loaded on first use: streams.ts), navigator, and
 * URLPattern (urlpattern-polyfill, loaded on first use: url-pattern.ts).
 */
import { Event as ShimEvent, EventTarget as ShimEventTarget, getEventAttributeValue, setEventAttributeValue } from 'event-target-shim';
import { DOMException } from './encoding.ts';
export { CompressionStream, DecompressionStream } from './compression.ts';
export { FixedLengthStream, IdentityTransformStream, TextDecoderStream, TextEncoderStream } from './byte-streams.ts';
export { URLPattern } from './url-pattern.ts';
export { Navigator, navigator } from './navigator.ts';

const SECRET = Symbol('construct');

/** DOM's Event: the type argument is required (WebIDL), which the library does not check. */
export class Event extends ShimEvent {
  constructor(...args: [type: string, init?: ShimEvent.EventInit]) {
    if ((args as unknown[]).length === 0) throw new TypeError("Failed to construct 'Event': 1 argument required, but only 0 present.");
    super(...args);
  }
}

/** DOM's CustomEvent: an Event with a `detail`. */
export class CustomEvent<T = unknown> extends Event {
  #detail: T | null;
  constructor(...args: [type: string, init?: ShimEvent.EventInit & { detail?: T }]) {
    if ((args as unknown[]).length === 0) throw new TypeError("Failed to construct 'CustomEvent': 1 argument required, but only 0 present.");
    super(...args);
    this.#detail = args[1]?.detail ?? null;
  }
  get detail(): T | null {
    return this.#detail;
  }
  initCustomEvent(...args: [type: string, bubbles?: boolean, cancelable?: boolean, detail?: T]): void {
    if ((args as unknown[]).length === 0) throw new TypeError("Failed to execute 'initCustomEvent': 1 argument required, but only 0 present.");
    if (this.eventPhase !== 0) return; // DOM: no effect on an event being dispatched
    this.initEvent(args[0], args[1], args[2]);
    this.#detail = args[3] ?? null;
  }
}

/** DOM's EventTarget; `signal` in the listener options must be an AbortSignal when present (WebIDL). */
export class EventTarget extends ShimEventTarget {
  addEventListener(...args: Parameters<ShimEventTarget['addEventListener']>): void {
    const options = args[2] as { signal?: unknown } | boolean | undefined;
    if (options !== null && typeof options === 'object' && 'signal' in options && !(options.signal instanceof AbortSignal))
      throw new TypeError("Failed to execute 'addEventListener': member signal is not of type 'AbortSignal'.");
    super.addEventListener(...args);
  }
}

/**
 * AbortSignal as DOM defines it, with `AbortSignal.any()`'s dependent signals: a signal made by any()
 * follows the source signals (never other dependent ones), and when a source aborts, every dependent is
 * marked aborted before any abort event fires, the source's first.
 */
export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason: unknown = undefined;
  #dependent = false;
  readonly #sources: AbortSignal[] = [];
  // Held strongly (the isolate has no WeakRef): a source keeps its dependents until it aborts or the request's isolate goes.
  readonly #dependents = new Set<AbortSignal>();

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
  get onabort(): ((event: Event) => void) | null {
    return getEventAttributeValue(this, 'abort') as ((event: Event) => void) | null;
  }
  set onabort(fn: ((event: Event) => void) | null) {
    setEventAttributeValue(this, 'abort', typeof fn === 'function' ? fn : null);
  }
  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }
  /** @internal DOM's "signal abort". */
  static signal(signal: AbortSignal, reason: unknown): void {
    if (signal.#aborted) return;
    signal.#aborted = true;
    signal.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
    const follow: AbortSignal[] = [];
    for (const d of signal.#dependents) {
      if (!d.#aborted) {
        d.#aborted = true;
        d.#reason = signal.#reason;
        follow.push(d);
      }
    }
    signal.#dependents.clear();
    for (const s of [signal, ...follow]) s.dispatchEvent(new Event('abort'));
  }
  static abort(reason?: unknown): AbortSignal {
    const s = new AbortSignal(SECRET);
    AbortSignal.signal(s, reason);
    return s;
  }
  /** Aborted when the first of `signals` is, with its reason (DOM's "create a dependent abort signal"). */
  static any(signals: Iterable<AbortSignal>): AbortSignal {
    const list = [...signals];
    for (const s of list) if (!(s instanceof AbortSignal)) throw new TypeError('AbortSignal.any takes an iterable of AbortSignal');
    const out = new AbortSignal(SECRET);
    const done = list.find((s) => s.#aborted);
    if (done) {
      out.#aborted = true;
      out.#reason = done.#reason;
      return out;
    }
    out.#dependent = true;
    for (const s of list) {
      for (const source of s.#dependent ? s.#sources : [s]) {
        if (out.#sources.includes(source)) continue;
        out.#sources.push(source);
        source.#dependents.add(out);
      }
    }
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
