// What isolated-vm gains when npm install rebuilds it (native/isolated-vm.mjs); absent from its prebuilt addon.
import 'isolated-vm';

declare module 'isolated-vm' {
  namespace Isolate {
    /**
     * `new Isolate(options)` made on a thread of isolated-vm's pool: V8's Isolate::Initialize (from the
     * snapshot) and the default context do not run on the calling thread, which only waits. Rejects as
     * the constructor throws (a bad option, a snapshot not made by this V8).
     */
    const createAsync: ((options?: IsolateOptions) => Promise<Isolate>) | undefined;
  }
  interface Isolate {
    /**
     * V8's collection on critical memory pressure (a full GC that shrinks the new space and releases free
     * pages), run as a task on the isolate's thread: an idle isolate gives back what its garbage holds.
     * `dropCode`: with the isolate in the background for it, which under V8's
     * --flush-code-based-on-tab-visibility drops the bytecode of every function not running.
     */
    reduceMemory?(dropCode: boolean): Promise<void>;
  }
}
