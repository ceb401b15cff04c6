/**
 * The bootstrap, bundled once per process with esbuild, in two halves:
 * - `libs` (bootstrap/libs.ts) is evaluated once into an isolated-vm start-up snapshot;
 * - `init` (bootstrap/index.ts) runs in every new context; its imports of the library modules are
 *   resolved to the objects the snapshot left in LIBS_GLOBAL (abi.ts), so it is small and quick to compile.
 */
import { build, stop, type Plugin } from 'esbuild';
import { fileURLToPath } from 'node:url';
import ivm from 'isolated-vm';
import * as encoding from './bootstrap/encoding.ts';
import * as fetchApi from './bootstrap/fetch-api.ts';
import * as web from './bootstrap/web-globals.ts';
import * as idna from './bootstrap/idna.ts';
import * as capnweb from './bootstrap/capnweb.ts';
import { LIBS_GLOBAL, SNAPSHOT_EFFECTS, SNAPSHOT_MODULES, type SnapshotLibs } from './abi.ts';

const dir = fileURLToPath(new URL('./bootstrap/', import.meta.url));
// The same modules the snapshot evaluates (bootstrap/libs.ts): their export names, by file.
const libs: SnapshotLibs = { encoding, fetchApi, web, idna, capnweb };
const FROM_SNAPSHOT = new Map<string, string[]>([
  ...Object.entries(SNAPSHOT_MODULES).map(
    ([lib, file]) => [file, Object.keys(libs[lib as keyof SnapshotLibs]).map((k) => `${lib}.${k}`)] as [string, string[]],
  ),
  ...SNAPSHOT_EFFECTS.map((file) => [file, []] as [string, string[]]),
]);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** In the init half, the library modules are the snapshot's objects, not new copies. */
const fromSnapshot: Plugin = {
  name: 'cordon-from-snapshot',
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(?:${[...FROM_SNAPSHOT.keys()].map(escape).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'snapshot' }));
    build.onLoad({ filter: /.*/, namespace: 'snapshot' }, (args) => {
      const names = FROM_SNAPSHOT.get(args.path)!;
      const lines = names.map((n) => `export const ${n.split('.')[1]} = globalThis.${LIBS_GLOBAL}.${n};`);
      return { contents: lines.join('\n') || 'export {};', loader: 'js' };
    });
  },
};

/** whatwg-url's `tr46` is swapped for idna.ts, which keeps tr46's tables out of every isolate's heap. */
const tr46ToHost: Plugin = {
  name: 'cordon-tr46-on-host',
  setup(build) {
    build.onResolve({ filter: /^tr46$/ }, () => ({ path: dir + 'idna.ts' }));
  },
};

/**
 * whatwg-url imports `@exodus/bytes/encoding.js` only to register the legacy multi-byte encodings
 * (GBK, Big5, Shift_JIS, …: ~190 KB of tables), used when a URL's query is encoded for a non-UTF-8
 * HTML document. Workers have no documents: URL and URLSearchParams always encode UTF-8. Left out,
 * the snapshot every isolate starts from is half the size (faster to create, less memory per isolate).
 */
const noLegacyEncodings: Plugin = {
  name: 'cordon-no-legacy-encodings',
  setup(build) {
    build.onResolve({ filter: /^@exodus\/bytes\/encoding\.js$/ }, () => ({ path: 'no-legacy-encodings', namespace: 'empty' }));
    build.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: '', loader: 'js' }));
  },
};

async function bundle(entry: string, plugins: Plugin[]): Promise<string> {
  const result = await build({
    entryPoints: [dir + entry],
    bundle: true,
    format: 'iife',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    write: false,
    legalComments: 'none',
    minifyWhitespace: true,
    logLevel: 'silent',
    plugins,
    // Strict mode for all of it: no sloppy-mode frame hands its function to a tenant's
    // Error.prepareStackTrace (CallSite.getFunction()).
    banner: { js: '"use strict";' },
  });
  return result.outputFiles[0]!.text;
}

/**
 * Run once while the snapshot is made, so the snapshot carries compiled code for the paths nearly
 * every request takes (V8 otherwise compiles them lazily in each new isolate, on its first request).
 * ~40 KB more snapshot; the first request in a new isolate is ~2 ms faster.
 */
const WARMUP = `{
  const { Request, Response, Headers, URL, URLSearchParams } = globalThis.${LIBS_GLOBAL}.fetchApi;
  const req = new Request('http://warm.up/a?b=c', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
  new URL(req.url).searchParams.get('b');
  new URLSearchParams('a=1').toString();
  const res = Response.json({ a: 1 }, { headers: new Headers(req.headers) });
  for (const _ of res.headers) {}
  new Response('x', { status: 201 }).headers.get('content-type');
}`;

export interface Bootstrap {
  snapshot: ivm.ExternalCopy<ArrayBuffer>;
  init: string;
}

let cached: Promise<Bootstrap> | undefined;

/** Built once per process; every isolate starts from the snapshot and runs `init` in its context. */
export function bootstrap(): Promise<Bootstrap> {
  cached ??= (async () => {
    const [libs, init] = await Promise.all([bundle('libs.ts', [tr46ToHost, noLegacyEncodings]), bundle('index.ts', [fromSnapshot])]);
    // esbuild's service process is not needed again, and must not outlive the sandbox's lockdown.
    await stop();
    return { snapshot: ivm.Isolate.createSnapshot([{ code: libs, filename: 'cordon:libs' }], WARMUP), init };
  })();
  return cached;
}
