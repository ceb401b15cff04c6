/**
 * Libraries an isolate compiles and runs on first use rather than carrying them in the start-up
 * snapshot (a snapshot module itself, abi.ts SNAPSHOT_MODULES): their source text, compiled code and
 * objects would otherwise be in every isolate's heap, used or not. The host compiles a unit in the
 * isolate from one copy of its source shared by the process and from a code cache made once
 * (bootstrap-bundle.ts, instance.ts), runs it in the isolate's context and hands back its factory,
 * which this module calls with the snapshot's library objects (what the unit imports of them) and keeps.
 *
 * A unit is loaded after tenant code may have run: it is internal to the runtime (no global of it is a
 * tenant's class), and what it captures of the built-ins as it loads is the tenant's own isolate's, so a
 * worker that replaces them first breaks only its own use of the unit.
 */
import type { HostCallbacks, LazyUnits, SnapshotLibs, UnitFactory, UnitImports } from '../abi.ts';

let host: HostCallbacks['unit'] | undefined;
let libs: SnapshotLibs | undefined;
let imports: UnitImports | undefined;
const loaded: Partial<LazyUnits> = {};
const apply = Reflect.apply;

/** Called once, in the snapshot (libs.ts), with the library objects a unit may import. */
export function keepLibs(l: SnapshotLibs): void {
  libs ??= l;
}

/** Called once per context by the init half, with the host callback and its own modules a unit imports; never reachable by tenant code. */
export function setUnitHost(fn: HostCallbacks['unit'], own: Omit<UnitImports, keyof SnapshotLibs>): void {
  if (host || !libs) return;
  host = fn;
  imports = { ...libs, ...own };
}

/** Unit `name`'s exports if this isolate has loaded it, else undefined (nothing is loaded). */
export function loadedUnit<K extends keyof LazyUnits>(name: K): LazyUnits[K] | undefined {
  return loaded[name] as LazyUnits[K] | undefined;
}

/** Unit `name`'s exports, loaded into this isolate on the first call. */
export function unit<K extends keyof LazyUnits>(name: K): LazyUnits[K] {
  let u = loaded[name] as LazyUnits[K] | undefined;
  if (!u) {
    if (!host || !imports) throw new TypeError(`the runtime's ${name} library is not available here`);
    const ref = host(name);
    if (!ref) throw new TypeError(`the runtime's ${name} library is not available here`);
    const factory = apply(ref.deref, ref, []) as UnitFactory;
    apply(ref.release, ref, []);
    u = loaded[name] = factory(imports) as LazyUnits[K];
  }
  return u;
}

const defineProperty = Object.defineProperty;

/** The key in a unit's PINNED of a built-in named by `path` ('Object', 'Object.defineProperty', 'Promise.prototype.then'). */
export const pinnedKey = (path: string): string => path.split('.').join('_');

/**
 * A lazy unit loads after tenant code may have run: each built-in its code names (a global, or a value read
 * off one: `paths`) is rewritten by bootstrap-bundle.ts (esbuild's `define`) to its entry here, taken as the
 * snapshot module that calls this is evaluated, so a worker that replaces one first does not steer the unit.
 * A call off PINNED gives the function PINNED as its `this`: Promise's own functions need Promise there, so
 * they are kept bound to it (the others named, Array.from included, answer the same either way, and stay
 * unbound: some run per character of a URL). `own`: entries of the snapshot's own, under the names the unit uses.
 */
export function pinned(paths: readonly string[], own: Record<string, unknown>): Readonly<Record<string, unknown>> {
  const read = (path: string) => {
    const [head, ...rest] = path.split('.');
    const holder = (globalThis as unknown as Record<string, Record<string, unknown>>)[head!]!;
    const value = rest.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], holder);
    return (holder as unknown) === Promise && rest.length === 1 && typeof value === 'function' ? value.bind(Promise) : value;
  };
  return Object.freeze({ __proto__: null, ...Object.fromEntries(paths.map((path) => [pinnedKey(path), read(path)])), ...own });
}

/**
 * Globals of a lazy unit on `g`: each an accessor until its first read, which loads the unit (`read`) and
 * leaves the value as a data property like every other global (writable, configurable, enumerable); a
 * write before that replaces it without loading anything.
 */
export function installLazyGlobals<N extends string>(g: object, names: readonly N[], read: (name: N) => { name: string }): void {
  const settle = (name: string, value: unknown) => defineProperty(g, name, { value, writable: true, configurable: true, enumerable: true });
  for (const name of names) {
    defineProperty(g, name, {
      get() {
        const value = read(name);
        // The global's name, whatever the bundler renamed the class to.
        if (value.name !== name) defineProperty(value, 'name', { value: name, configurable: true });
        settle(name, value);
        return value;
      },
      set(value: unknown) {
        settle(name, value);
      },
      configurable: true,
      enumerable: true,
    });
  }
}
