/**
 * `nodejs_compat` at deploy, as wrangler does it: `node:*` imports are resolved while bundling, from
 * unenv's polyfills (the ones wrangler uses where workerd has no module of its own) and, where unenv has
 * only a stand-in for a module Workers really provides, from a working implementation in the isolate
 * (`cli/node-polyfills/`: streams from readable-stream, crypto hashes from @noble/hashes, zlib from
 * fflate and Brotli from brotli-wasm, `process.env` from the worker's env, net and tls over cloudflare:sockets,
 * the http and https clients over fetch() and http servers behind cloudflare:node's httpServerHandler, os with workerd's fixed answers, fs with workerd's virtual file system, dns over DNS-over-HTTPS with the worker's fetch()). `node:async_hooks` is the runtime's own
 * (services/sandbox/runtime/bootstrap/async-context.ts), so a bundle that imports it gets its `await`s
 * lowered to `then` (esbuild's `__async` helper), the only way its continuations can carry the context.
 * `@cloudflare/unenv-preset` says which modules Workers provides at the worker's compatibility date and
 * flags; those Cordon only has unenv's stand-in for are named at deploy.
 *
 * Every polyfill runs in the worker's isolate as the worker's own code: none reaches the host.
 */
import { getCloudflarePreset } from '@cloudflare/unenv-preset';
import type { Plugin, PluginBuild } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineEnv } from 'unenv';

/** Flags Cordon honours (each as Workers defines it); any other is refused at deploy. */
export const COMPAT_FLAGS: Record<string, string> = {
  nodejs_compat: 'Node.js modules (node:*) and globals (Buffer, process, global, setImmediate)',
  nodejs_compat_v2: 'nodejs_compat with the polyfilled modules and globals whatever the date',
  no_nodejs_compat_v2: 'nodejs_compat without the polyfilled modules and globals',
  nodejs_als: 'node:async_hooks (AsyncLocalStorage) alone',
  nodejs_compat_populate_process_env: 'process.env holds the string vars',
  nodejs_compat_do_not_populate_process_env: 'process.env starts empty',
  enable_nodejs_http_modules: 'the node:http and node:https clients whatever the date',
  disable_nodejs_http_modules: "node:http and node:https as unenv's stand-ins whatever the date",
  enable_nodejs_http_server_modules: 'node:http servers and cloudflare:node httpServerHandler whatever the date',
  disable_nodejs_http_server_modules: 'node:http servers throw ERR_METHOD_NOT_IMPLEMENTED whatever the date',
  enable_nodejs_os_module: "node:os with workerd's fixed answers whatever the date",
  disable_nodejs_os_module: "node:os as unenv's stand-in whatever the date",
  enable_nodejs_fs_module: "node:fs with workerd's virtual file system whatever the date",
  disable_nodejs_fs_module: "node:fs as unenv's stand-in whatever the date",
  global_fetch_strictly_public: "fetch() reaches the public Internet, as Cordon's egress always does",
  assets_navigation_prefers_asset_serving: 'a navigation request that matches no asset gets not_found_handling without the worker (docs/static-assets.md)',
  assets_navigation_has_no_effect: 'a navigation request that matches no asset goes to the worker',
};

/** Where Workers turns nodejs_compat_v2 and process.env population on by date. */
const V2_DATE = '2024-09-23';
const PROCESS_ENV_DATE = '2025-04-01';

/** The flags that are not Cordon's, each with why: '' when all are known. */
export function unknownFlags(flags: string[]): string {
  const bad = flags.filter((f) => !Object.hasOwn(COMPAT_FLAGS, f));
  if (!bad.length) return '';
  return `${bad.join(', ')}: ${bad.length === 1 ? 'a compatibility flag' : 'compatibility flags'} Cordon does not implement (it honours ${Object.keys(COMPAT_FLAGS).join(', ')}); remove ${bad.length === 1 ? 'it' : 'them'}`;
}

export interface NodeCompat {
  /** No `node:*` module at all (neither nodejs_compat nor nodejs_als). */
  off: boolean;
  /** Only `node:async_hooks` (nodejs_als). */
  alsOnly: boolean;
  /** Buffer, process, global, setImmediate as globals, bare names (`buffer`) and unenv's stand-ins (v2). */
  v2: boolean;
  /** process.env holds the worker's string vars. */
  populateEnv: boolean;
  /** Modules Workers provides at this date and these flags (without the `node:` prefix). */
  workersNative: Set<string>;
  /** node:http servers (from 2025-09-01 or enable_nodejs_http_server_modules), as the preset says. */
  httpServer: boolean;
}

/** The date flags are gated by: a date that is not one (a template's "<COMPATIBILITY_DATE>" placeholder) gates as wrangler's default. */
export function gatingDate(date: string | undefined): string {
  return date !== undefined && /^\d{4}-\d{2}-\d{2}$/.test(date) ? date : '2024-09-03';
}

export function nodeCompat(date: string | undefined, flags: string[]): NodeCompat {
  const has = (f: string) => flags.includes(f);
  const compatibilityDate = gatingDate(date);
  const on = has('nodejs_compat') || has('nodejs_compat_v2');
  const v2 = on && (has('nodejs_compat_v2') || compatibilityDate >= V2_DATE) && !has('no_nodejs_compat_v2');
  const populateEnv =
    on && (has('nodejs_compat_populate_process_env') || compatibilityDate >= PROCESS_ENV_DATE) && !has('nodejs_compat_do_not_populate_process_env');
  const preset = getCloudflarePreset({ compatibilityDate, compatibilityFlags: flags });
  const workersNative = new Set((preset.external ?? []).filter((m) => !m.startsWith('node:')));
  return { off: !on && !has('nodejs_als'), alsOnly: !on && has('nodejs_als'), v2, populateEnv, workersNative, httpServer: workersNative.has('_http_server') };
}

/** esbuild `supported` for a bundle using AsyncLocalStorage: async functions become generators driven by `then`. */
export const LOWERED_ASYNC = { 'async-await': false } as const;

const POLYFILLS = fileURLToPath(new URL('./node-polyfills/', import.meta.url));
const here = (f: string) => join(POLYFILLS, f);
// The trailing slash names the npm package where Node has a built-in of the same name.
const pkg = (spec: string) => createRequire(import.meta.url).resolve(`${spec}/`);

/**
 * The modules Cordon gives a working implementation of where unenv has a stand-in; the rest are unenv's
 * (its buffer, events, path, url, querystring, util, assert, timers, … are working ones).
 */
function cordonModules(compat: NodeCompat): Record<string, string> {
  const stream = here('stream.ts');
  // The http clients where Workers has them (2025-08-15, or the flag): before, unenv's stand-ins, as wrangler bundles.
  const http: Record<string, string> = compat.workersNative.has('http') ? { http: here('http.ts'), https: here('https.ts') } : {};
  if (compat.httpServer) http._http_server = here('http-server.ts');
  const os: Record<string, string> = compat.workersNative.has('os') ? { os: here('os.ts') } : {};
  const fs: Record<string, string> = compat.workersNative.has('fs') ? { fs: here('fs.ts'), 'fs/promises': here('fs-promises.ts') } : {};
  const dns: Record<string, string> = compat.workersNative.has('dns') ? { dns: here('dns.ts'), 'dns/promises': here('dns-promises.ts') } : {};
  return {
    ...http,
    ...os,
    ...fs,
    ...dns,
    stream,
    _stream_duplex: stream,
    _stream_passthrough: stream,
    _stream_readable: stream,
    _stream_transform: stream,
    _stream_writable: stream,
    'stream/promises': here('stream-promises.ts'),
    'stream/consumers': here('stream-consumers.ts'),
    string_decoder: pkg('string_decoder'),
    // Node's EventEmitter is a function that legacy code calls (`EventEmitter.call(this)`, readable-stream
    // does); unenv's is a class, which cannot be. The npm port of Node's own module is the function.
    events: pkg('events'),
    crypto: here('crypto.ts'),
    zlib: here('zlib.ts'),
    process: here('process.ts'),
    util: here('util.ts'),
    net: here('net.ts'),
    tls: here('tls.ts'),
  };
}

/** unenv modules that work (ports of Node's own code or thin layers over Web APIs); its others are stand-ins. */
const UNENV_WORKING = new Set([
  'assert',
  'assert/strict',
  'buffer',
  'constants',
  'diagnostics_channel',
  'path',
  'path/posix',
  'path/win32',
  'punycode',
  'querystring',
  'stream/web',
  'sys',
  'timers',
  'timers/promises',
  'url',
  'util/types',
]);

/** Rewrites a file of a package as it is bundled: each `[from, to]` once; a `from` not found fails the build. */
function patch(b: PluginBuild, filter: RegExp, what: string, cuts: readonly (readonly [string, string])[]): void {
  b.onLoad({ filter }, async (args) => {
    const source = await readFile(args.path, 'utf8');
    if (cuts.some(([from]) => !source.includes(from))) return { errors: [{ text: `${args.path}: ${what} changed; cli/nodejs-compat.ts must be updated` }] };
    return { contents: cuts.reduce((text, [from, to]) => text.replace(from, to), source), loader: 'js' };
  });
}

const ASYNC_ITERATOR_PROTO = 'Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype)';

/** The runtime's own modules, left as imports for the isolate to resolve (services/sandbox/runtime/modules.ts). */
const RUNTIME = new Set(['async_hooks']);

export interface NodePlugin {
  plugin: Plugin;
  /** For esbuild's `inject`: the globals Workers defines under nodejs_compat v2. */
  inject: string[];
  define: Record<string, string>;
  /** Modules the bundle imported that Workers provides and Cordon has only unenv's stand-in for. */
  standIns: Set<string>;
}

/** The esbuild plugin resolving `node:*` (and, with v2, bare `buffer`, `events`, …) for this compat setting. */
export function nodePlugin(compat: NodeCompat): NodePlugin {
  const { env } = defineEnv({ nodeCompat: true, npmShims: true, resolve: true });
  const own = cordonModules(compat);
  const standIns = new Set<string>();
  const builtins = new Set(Object.keys(env.alias).filter((k) => !k.startsWith('node:') && env.alias[`node:${k}`] !== undefined));
  for (const m of RUNTIME) builtins.add(m);
  for (const m of Object.keys(own)) builtins.add(m);
  const target = (name: string): string | { external: true } => {
    if (RUNTIME.has(name)) return { external: true };
    if (Object.hasOwn(own, name)) return own[name]!;
    if (compat.workersNative.has(name) && !UNENV_WORKING.has(name)) standIns.add(name);
    const alias = env.alias[`node:${name}`] ?? env.alias[name]!;
    // unenv aliases some modules to others (`stream/web` → `node:stream/web`): follow to a file.
    return alias.startsWith('node:') ? target(alias.slice(5)) : alias;
  };
  const plugin: Plugin = {
    name: 'cordon-nodejs-compat',
    setup(b) {
      // unenv's events takes %AsyncIteratorPrototype% from an async generator, which lowered `await`s turn
      // into a plain function; the one thing it needs from it is the [Symbol.asyncIterator] returning itself.
      patch(b, /[\\/]unenv[\\/]dist[\\/]runtime[\\/]node[\\/]internal[\\/]events[\\/]events\.mjs$/, "unenv's events module", [
        [ASYNC_ITERATOR_PROTO, '{ [Symbol.asyncIterator]() { return this; } }'],
      ]);
      // node-inspect-extracted copies the primordials of Atomics and makes safe subclasses of WeakRef and
      // FinalizationRegistry, none of which the isolate has (no shared memory, no GC observation); inspect
      // uses none of them, so they are left out. It reads %AsyncIteratorPrototype% as unenv's events does.
      patch(b, /[\\/]node-inspect-extracted[\\/]dist[\\/]inspect\.js$/, 'node-inspect-extracted', [
        ['["Atomics","JSON",', '["JSON",'],
        ['e.SafeFinalizationRegistry=k(b,class extends b{}),e.SafeWeakRef=k(O,class extends O{}),', ''],
        // As in unenv's events (above): lowered `await`s make the async generator a plain function.
        ['Reflect.getPrototypeOf(Reflect.getPrototypeOf(async function*(){}).prototype)', '{[Symbol.asyncIterator](){return this}}'],
      ]);
      // brotli-wasm's web build (cli/node-polyfills/brotli.ts), instantiated synchronously from the module the
      // isolate compiles (node:zlib's *Sync functions need it), never fetched: its async init becomes initSync.
      const glue = join(dirname(createRequire(import.meta.url).resolve('brotli-wasm')), 'pkg.web/brotli_wasm.js');
      b.onResolve({ filter: /^cordon:brotli-wasm$/ }, (args) => (args.importer.includes('/node-polyfills/') ? { path: glue } : undefined));
      patch(b, /[\\/]brotli-wasm[\\/]pkg\.web[\\/]brotli_wasm\.js$/, 'brotli-wasm', [
        // A fresh instance drops every reference to the one before (a trapped one: cli/node-polyfills/brotli.ts), whose memory is charged until collected.
        ['async function init(input) {', 'export function initSync(input) { wasm = undefined; cachegetUint8Memory0 = null; cachegetInt32Memory0 = null;'],
        ["input = new URL('brotli_wasm_bg.wasm', import.meta.url);", "throw new TypeError('brotli-wasm: no module');"],
        ['const { instance, module } = await load(await input, imports);', 'const module = input, instance = new WebAssembly.Instance(module, imports);'],
        ['init.__wbindgen_wasm_module = module;', ''],
        ['export default init;', ''],
      ]);
      // readable-stream takes nextTick from the npm `process` package, whose queue drains on a setTimeout: after a
      // response streamed past its handler's return, that queue was seen stuck, and every later request of the
      // isolate reading a stream waited for a tick that never came. Cordon's process (a microtask per tick) cannot.
      b.onResolve({ filter: /^process\/$/ }, (args) => (args.importer.includes('/readable-stream/') ? { path: here('process.ts') } : undefined));
      // workerd's cloudflare:node (httpServerHandler) is node:http's servers' front door: bundled beside them.
      b.onResolve({ filter: /^cloudflare:node$/ }, () => ({ path: here('cloudflare-node.ts') }));
      // The isolate's own halves of node:crypto and node:zlib (services/sandbox/runtime/modules.ts), for the polyfills only.
      b.onResolve({ filter: /^node-internal:/ }, (args) => (args.importer.includes('/node-polyfills/') ? { path: args.path, external: true } : undefined));
      b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
        const prefixed = args.path.startsWith('node:');
        const name = prefixed ? args.path.slice(5) : args.path;
        if (!builtins.has(name)) return undefined;
        // Bare names are npm packages unless v2 makes them Node's (as workerd does); a polyfill's own imports always are.
        if (!prefixed && !compat.v2 && !args.importer.includes('/unenv/') && !args.importer.includes('/node-polyfills/')) return undefined;
        if (compat.alsOnly && name !== 'async_hooks' && !args.importer.includes('/node-polyfills/')) {
          return { errors: [{ text: `${args.path}: only node:async_hooks is available with nodejs_als; add the nodejs_compat compatibility flag` }] };
        }
        const t = target(name);
        // A CommonJS require() of a runtime module or of one of Cordon's ES polyfills gets the module's default
        // export, as require() of Node's own module does (`util.inherits(X, require('stream'))`; wrangler does the same).
        if (typeof t === 'string') return args.kind === 'require-call' && t.startsWith(POLYFILLS) ? { path: t, namespace: 'cordon-require-esm' } : { path: t };
        // ESM output has no require, so it becomes an import (as wrangler does).
        return args.kind === 'require-call' ? { path: `node:${name}`, namespace: 'cordon-require-esm' } : { path: `node:${name}`, external: true };
      });
      b.onLoad({ filter: /.*/, namespace: 'cordon-require-esm' }, (args) => ({
        // The default export, with any named export it lacks (as Node's module object has every one of them).
        contents: `import * as m from ${JSON.stringify(args.path)};
const d = m.default;
if (d !== null && (typeof d === 'object' || typeof d === 'function') && Object.isExtensible(d))
  for (const k of Object.keys(m)) if (k !== 'default' && !(k in d)) d[k] = m[k];
module.exports = d ?? m;`,
        loader: 'js',
        // A virtual module resolves nothing by itself, a polyfill's absolute path included.
        resolveDir: POLYFILLS,
      }));
    },
  };
  return {
    plugin,
    inject: compat.v2 ? [here('globals.ts')] : [],
    define: compat.v2 ? { global: 'globalThis' } : {},
    standIns,
  };
}

/** What the process polyfill is told at bundle time (a define): whether process.env holds the vars. */
export const POPULATE_ENV_DEFINE = '__CORDON_POPULATE_PROCESS_ENV__';
/** What node:http is told at bundle time (a define): whether its servers are enabled (http-server.ts). */
export const HTTP_SERVER_DEFINE = '__CORDON_HTTP_SERVER__';
