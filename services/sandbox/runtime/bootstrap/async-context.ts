/**
 * The async context behind `AsyncLocalStorage` (`node:async_hooks`): a frame (which store each storage
 * holds) that follows the worker's own continuations — promise reactions, timers and microtasks — as
 * V8's continuation-preserved embedder data does for workerd and Node. isolated-vm does not expose that
 * V8 API, so the frame is carried in JS: once a worker imports `node:async_hooks`, `then` (which `catch`,
 * `finally` and the `__async` helper of a bundle whose `await`s deploy lowered call) records the frame
 * at the point a reaction is registered and restores it when the reaction runs; timers and
 * `queueMicrotask` do the same at scheduling time (timers.ts).
 *
 * Every run restores the frame it found, and each entry from the host starts from the empty frame
 * (`enterRoot`), so nothing set while one request ran is seen by another — not even after a run was cut
 * off by a limit before it could restore.
 */

type Frame = ReadonlyMap<object, unknown> | undefined;

const apply = Reflect.apply;
const MapCtor = Map;
const mapGet = Map.prototype.get;
const mapHas = Map.prototype.has;
const mapSet = Map.prototype.set;
const mapDelete = Map.prototype.delete;
const defineProperty = Object.defineProperty;
const freeze = Object.freeze;
const promiseProto = Promise.prototype;
const origThen = Promise.prototype.then;

let current: Frame;
let installed = false;

/** A host entry (a request, a timer, an event) starts with no store set. */
export function enterRoot(): void {
  current = undefined;
}

function runIn<T>(frame: Frame, fn: (...a: unknown[]) => T, self: unknown, args: unknown[]): T {
  const previous = current;
  current = frame;
  try {
    return apply(fn, self, args);
  } finally {
    current = previous;
  }
}

/** `fn`, to run in the frame current now; `fn` itself while no worker uses async context (no cost). */
export function bindToFrame<F extends (...a: never[]) => unknown>(fn: F): F {
  if (!installed) return fn;
  const frame = current;
  return function (this: unknown, ...args: unknown[]) {
    return runIn(frame, fn as unknown as (...a: unknown[]) => unknown, this, args);
  } as unknown as F;
}

/** From here on, promise reactions keep the frame they were registered in. */
function install(): void {
  if (installed) return;
  installed = true;
  defineProperty(promiseProto, 'then', {
    value: function then(this: Promise<unknown>, onFulfilled?: unknown, onRejected?: unknown) {
      const frame = current;
      const wrap = (fn: unknown) =>
        typeof fn === 'function'
          ? function (this: unknown, v: unknown) {
              return runIn(frame, fn as (...a: unknown[]) => unknown, this, [v]);
            }
          : fn;
      return apply(origThen, this, [wrap(onFulfilled), wrap(onRejected)]);
    },
    writable: true,
    configurable: true,
    enumerable: false,
  });
}

function withStore(frame: Frame, key: object, store: unknown, present: boolean): Frame {
  const next = new MapCtor<object, unknown>(frame ?? []);
  if (present) apply(mapSet, next, [key, store]);
  else apply(mapDelete, next, [key]);
  return next;
}

function callable(fn: unknown, what: string): (...a: unknown[]) => unknown {
  if (typeof fn !== 'function') throw new TypeError(`${what}: the callback must be a function`);
  return fn as (...a: unknown[]) => unknown;
}

/** node:async_hooks' AsyncLocalStorage, as workerd has it (run, exit, getStore, bind, snapshot; enterWith throws, as there). */
export class AsyncLocalStorage<T> {
  constructor() {
    install();
  }
  getStore(): T | undefined {
    return current === undefined ? undefined : (apply(mapGet, current, [this]) as T | undefined);
  }
  run<R>(store: T, fn: (...args: unknown[]) => R, ...args: unknown[]): R {
    return runIn(withStore(current, this, store, true), callable(fn, 'AsyncLocalStorage.run'), undefined, args) as R;
  }
  exit<R>(fn: (...args: unknown[]) => R, ...args: unknown[]): R {
    const f = callable(fn, 'AsyncLocalStorage.exit');
    if (current === undefined || !apply(mapHas, current, [this])) return apply(f, undefined, args) as R;
    return runIn(withStore(current, this, undefined, false), f, undefined, args) as R;
  }
  /** As workerd: a store entered for the rest of a run would outlive the run that set it. */
  enterWith(_store: T): never {
    throw new Error('asyncLocalStorage.enterWith() is not implemented');
  }
  /** Nothing to release: a frame is dropped with the last continuation that holds it. */
  disable(): void {}
  static bind<F extends (...a: never[]) => unknown>(fn: F): F {
    callable(fn, 'AsyncLocalStorage.bind');
    install();
    return bindToFrame(fn);
  }
  static snapshot(): <R>(fn: (...args: unknown[]) => R, ...args: unknown[]) => R {
    install();
    const frame = current;
    return (fn, ...args) => runIn(frame, callable(fn, 'AsyncLocalStorage.snapshot()'), undefined, args) as never;
  }
}

/** node:async_hooks' AsyncResource: runs functions in the frame it was made in. */
export class AsyncResource {
  readonly #frame: Frame;
  readonly type: string;
  constructor(type: string) {
    install();
    this.type = String(type);
    this.#frame = current;
  }
  runInAsyncScope<R>(fn: (...args: unknown[]) => R, thisArg?: unknown, ...args: unknown[]): R {
    return runIn(this.#frame, callable(fn, 'AsyncResource.runInAsyncScope'), thisArg, args) as R;
  }
  bind<F extends (...a: never[]) => unknown>(fn: F, thisArg?: unknown): F {
    const f = callable(fn, 'AsyncResource.bind');
    const frame = this.#frame;
    return function (this: unknown, ...args: unknown[]) {
      return runIn(frame, f, thisArg === undefined ? this : thisArg, args);
    } as unknown as F;
  }
  emitDestroy(): this {
    return this;
  }
  asyncId(): number {
    return 0;
  }
  triggerAsyncId(): number {
    return 0;
  }
  static bind<F extends (...a: never[]) => unknown>(fn: F, type?: string, thisArg?: unknown): F {
    return new AsyncResource(type ?? 'bound-anonymous-fn').bind(fn, thisArg);
  }
}

/** What `node:async_hooks` exports (modules.ts builds the module from it). */
export const asyncHooks = freeze({ AsyncLocalStorage, AsyncResource });
