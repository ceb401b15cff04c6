/** isolated-vm with its ExternalCopy, isolates, synchronous compiles and calls to the host's fire-and-forget callbacks counted, and each new context's URL parses readable (see isolate-copies.ts). */
import ivm from 'isolated-vm';
import { LIBS_GLOBAL } from '../../services/sandbox/runtime/abi.ts';

let copies = 0;
let isolates = 0;
let syncIsolates = 0;
let syncCompiles = 0;
let disposedLooks = 0;
/** ExternalCopies made so far that copy (not transferOut). */
export const externalCopies = (): number => copies;
let moves = 0;
/** ExternalCopies made so far that move a buffer (transferOut): into an isolate, a request's body or a pull's buffer. */
export const externalMoves = (): number => moves;
/** Isolates made so far, however made. */
export const isolatesMade = (): number => isolates;
/** Isolates made so far by `new Isolate`: V8 made them on the calling thread (the process's main thread), not with Isolate.createAsync. */
export const isolatesMadeSync = (): number => syncIsolates;
/** The isolate made last, however made (as the runtime holds it). */
let last: ivm.Isolate | undefined;
export const lastIsolate = (): ivm.Isolate | undefined => last;
/** Reads of an isolate's isDisposed so far: how many isolates a caller looked at. */
export const disposedLooksDone = (): number => disposedLooks;
/** Scripts and modules compiled synchronously so far: on the calling thread (the process's main thread), not the isolate's. */
export const syncCompilesDone = (): number => syncCompiles;

// Each context's parse counter (of its snapshot library objects), taken as the context is made: the bootstrap deletes their global before tenant code runs.
const counters: ivm.Reference<() => number>[] = [];
const lastRead = new Map<ivm.Reference<() => number>, number>();
/** One context's count; a context whose isolate is gone (the runtime's own, code caches made in it) keeps its last. */
const readCount = (count: ivm.Reference<() => number>): number => {
  try {
    lastRead.set(count, count.applySync(undefined, []) as number);
  } catch {}
  return lastRead.get(count) ?? 0;
};
/** Runs of whatwg-url's parser so far, in every context made since this module loaded (bootstrap/url-parse-cache.ts). */
export const urlParses = (): number => counters.reduce((n, count) => n + readCount(count), 0);

// Turns of the event loop, counted by an immediate that queues itself again: each turn runs it once.
let turn = 0;
const tick = () => {
  turn++;
  setImmediate(tick).unref();
};
setImmediate(tick).unref();
const disposalTurns: number[] = [];
/** Isolates disposed so far, and the most of them disposed in one turn of the event loop after the first `since`. */
export const disposals = (since = 0): { count: number; mostInOneTurn: number } => {
  const perTurn = new Map<number, number>();
  for (const t of disposalTurns.slice(since)) perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
  return { count: disposalTurns.length, mostInOneTurn: Math.max(0, ...perTurn.values()) };
};

const scripts = new Map<string, number>();
/** Scripts compiled so far (either way) under `filename` (the runtime's lazy units are `cordon:<unit>`). */
export const scriptsCompiled = (filename: string): number => scripts.get(filename) ?? 0;
const countScript = (options: { filename?: string } | undefined) => {
  const name = options?.filename ?? '';
  scripts.set(name, (scripts.get(name) ?? 0) + 1);
};

/** The addon's methods are read-only; a subclass counts what it is asked to do. */
class CountedIsolate extends ivm.Isolate {
  constructor(...args: ConstructorParameters<typeof ivm.Isolate>) {
    super(...args);
    isolates++;
    syncIsolates++;
    last = this;
  }
  override compileScriptSync(...args: Parameters<ivm.Isolate['compileScriptSync']>): ivm.Script {
    syncCompiles++;
    countScript(args[1]);
    return super.compileScriptSync(...args);
  }
  override compileScript(...args: Parameters<ivm.Isolate['compileScript']>): Promise<ivm.Script> {
    countScript(args[1]);
    return super.compileScript(...args);
  }
  override compileModuleSync(...args: Parameters<ivm.Isolate['compileModuleSync']>): ivm.Module {
    syncCompiles++;
    return super.compileModuleSync(...args);
  }
  override dispose(): void {
    disposalTurns.push(turn);
    super.dispose();
  }
  override async createContext(...args: Parameters<ivm.Isolate['createContext']>): Promise<ivm.Context> {
    const context = await super.createContext(...args);
    counters.push(context.evalSync(`(libs => () => libs.fetchApi.urlParses())(globalThis.${LIBS_GLOBAL})`, { reference: true }));
    return context;
  }
}

// isDisposed is an accessor of the addon's prototype (typed as a property): counted through its getter.
const isDisposed = Object.getOwnPropertyDescriptor(ivm.Isolate.prototype, 'isDisposed')?.get;
Object.defineProperty(CountedIsolate.prototype, 'isDisposed', {
  get(this: ivm.Isolate) {
    disposedLooks++;
    return isDisposed?.call(this);
  },
});

// Isolate.createAsync (where isolated-vm was rebuilt) makes a plain Isolate, which can be neither given
// another prototype nor own properties: it is counted, and handed out behind a proxy that counts as
// CountedIsolate does (its methods run on the isolate itself).
const { createAsync } = ivm.Isolate;
if (createAsync)
  Object.defineProperty(CountedIsolate, 'createAsync', {
    value: async (...args: Parameters<typeof createAsync>) => {
      const isolate = await createAsync.apply(ivm.Isolate, args);
      isolates++;
      return (last = new Proxy(isolate, {
        get(target, key) {
          const counting = key === 'constructor' ? undefined : Object.getOwnPropertyDescriptor(CountedIsolate.prototype, key);
          if (counting?.get) return counting.get.call(target);
          const value: unknown = counting ? counting.value : Reflect.get(target, key, target);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }));
    },
  });

let posted = 0;
/** Calls so far of the host callbacks an isolate does not wait for (ASYNC_CALLBACKS: each is a task on the host's event loop). */
export const postedCallbacks = (): number => posted;
let serialised = 0;
/** ArrayBuffers of 32 KiB or more so far among those callbacks' arguments: each was serialised out of the isolate, then copied again into the host's heap. */
export const serialisedBuffers = (): number => serialised;
const countBuffers = (args: unknown[]) => {
  for (const a of args) if (a instanceof ArrayBuffer && a.byteLength >= 32 * 1024) serialised++;
};

const counted = Object.create(ivm) as typeof ivm;
Object.defineProperty(counted, 'Callback', {
  value: new Proxy(ivm.Callback, {
    construct(target, args: [(...a: unknown[]) => unknown, { ignored?: boolean }?]) {
      const [fn, options] = args;
      if (!options?.ignored) return Reflect.construct(target, args);
      return Reflect.construct(target, [(...a: unknown[]) => (posted++, countBuffers(a), fn(...a)), options]);
    },
  }),
});
Object.defineProperty(counted, 'ExternalCopy', {
  value: new Proxy(ivm.ExternalCopy, {
    construct(target, args: [unknown, { transferOut?: boolean }?]) {
      if (!args[1]?.transferOut) copies++;
      else moves++;
      return Reflect.construct(target, args);
    },
  }),
});
Object.defineProperty(counted, 'Isolate', { value: CountedIsolate });
export default counted;
