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
}
