/**
 * A context being snapshotted has no SharedArrayBuffer (V8 adds it to each context later), but
 * webidl-conversions (under whatwg-url) reads `SharedArrayBuffer.prototype` while it loads. It gets a
 * stand-in with the two getters it captures; libs.ts removes the stand-in once the libraries are
 * loaded, and the per-context lockdown deletes the real one.
 */
const g = globalThis as Record<string, unknown>;
/** Whether the stand-in was put in (libs.ts removes it then); a module export, not one more global. */
export const placedSAB = typeof g.SharedArrayBuffer === 'undefined';
if (placedSAB) {
  g.SharedArrayBuffer = class SharedArrayBuffer {
    get byteLength(): number {
      throw new TypeError('not a SharedArrayBuffer');
    }
    get growable(): boolean {
      throw new TypeError('not a SharedArrayBuffer');
    }
  };
}
