/**
 * The bootstrap, bundled once per process with esbuild, in two halves:
 * - `libs` (bootstrap/libs.ts) is evaluated once into an isolated-vm start-up snapshot;
 * - `init` (bootstrap/index.ts) runs in every new context; its imports of the library modules are
 *   resolved to the objects the snapshot left in LIBS_GLOBAL (abi.ts), so it is small and quick to compile;
 * - `units` (abi.ts LAZY_UNITS), each compiled and run by an isolate on first use (bootstrap/units.ts),
 *   whose imports of the library modules are the snapshot's objects too.
 */
import { build, stop, type Plugin } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ivm from 'isolated-vm';
import * as encoding from './bootstrap/encoding.ts';
import * as fetchApi from './bootstrap/fetch-api.ts';
import * as web from './bootstrap/web-globals.ts';
import * as idna from './bootstrap/idna.ts';
import * as capnweb from './bootstrap/capnweb.ts';
import * as digest from './bootstrap/digest-stream.ts';
import * as units from './bootstrap/units.ts';
import * as streams from './bootstrap/streams.ts';
import * as url from './bootstrap/url.ts';
import * as rpcClone from './bootstrap/rpc-clone.ts';
import {
  LAZY_UNITS,
  LIBS_GLOBAL,
  SNAPSHOT_EFFECTS,
  TAKE_ENTRY,
  SNAPSHOT_MODULES,
  UNIT_INIT_MODULES,
  type LazyUnits,
  type SnapshotLibs,
  type UnitImports,
} from './abi.ts';

const dir = fileURLToPath(new URL('./bootstrap/', import.meta.url));
// The same modules the snapshot evaluates (bootstrap/libs.ts): their export names, by file.
const libs: SnapshotLibs = { encoding, fetchApi, web, idna, capnweb, digest, units, streams, url };
const FROM_SNAPSHOT = new Map<string, string[]>([
  ...Object.entries(SNAPSHOT_MODULES).map(
    ([lib, file]) => [file, Object.keys(libs[lib as keyof SnapshotLibs]).map((k) => `${lib}.${k}`)] as [string, string[]],
  ),
  ...SNAPSHOT_EFFECTS.map((file) => [file, []] as [string, string[]]),
]);
// A unit's imports: the snapshot's modules and the init half's it shares (abi.ts UnitImports).
const initForUnits: Omit<UnitImports, keyof SnapshotLibs> = { rpcClone };
const FOR_UNITS = new Map<string, string[]>([
  ...FROM_SNAPSHOT,
  ...Object.entries(UNIT_INIT_MODULES).map(
    ([name, file]) => [file, Object.keys(initForUnits[name as keyof typeof initForUnits]).map((k) => `${name}.${k}`)] as [string, string[]],
  ),
]);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * In the init half and the units, the library modules (`modules`: file → its export names) are the
 * snapshot's objects, not new copies: read from `libs`, the init half's LIBS_GLOBAL or a unit factory's parameter.
 */
const fromSnapshot = (libs: string, modules = FROM_SNAPSHOT): Plugin => ({
  name: 'cordon-from-snapshot',
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(?:${[...modules.keys()].map(escape).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'snapshot' }));
    build.onLoad({ filter: /.*/, namespace: 'snapshot' }, (args) => {
      const names = modules.get(args.path)!;
      const lines = names.map((n) => `export const ${n.split('.')[1]} = ${libs}.${n};`);
      return { contents: lines.join('\n') || 'export {};', loader: 'js' };
    });
  },
});

/**
 * whatwg-url (the `url` unit) takes what it imports of the snapshot from it: its `tr46` is idna.ts, which
 * keeps tr46's tables out of every isolate's heap (IDNA runs on the host); its @exodus/bytes modules are
 * the snapshot's (url.ts), which TextDecoder's multi-byte wiring is part of.
 */
const whatwgUrlImports: Plugin = {
  name: 'cordon-whatwg-url-imports',
  setup(build) {
    const fromWhatwgUrl = (importer: string) => /[\\/]whatwg-url[\\/]lib[\\/]/.test(importer);
    build.onResolve({ filter: /^tr46$/ }, () => ({ path: './idna.ts', namespace: 'snapshot' }));
    build.onResolve({ filter: /^@exodus\/bytes\/(encoding|whatwg)\.js$/ }, (args) =>
      fromWhatwgUrl(args.importer) ? { path: args.path, namespace: 'whatwg-url-bytes' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'whatwg-url-bytes' }, (args) => ({
      // encoding.js is imported for its effect, which the snapshot's copy had.
      contents: args.path.endsWith('whatwg.js') ? `export const percentEncodeAfterEncoding = ${LIBS_GLOBAL}.url.percentEncodeAfterEncoding;` : 'export {};',
      loader: 'js',
    }));
  },
};

/**
 * TextDecoder is @exodus/bytes' (every WHATWG encoding); the index tables of its multi-byte encodings
 * (~150 KB of JSON) are kept out of the snapshot every isolate starts from: the package's lazy loader is
 * replaced by legacy-tables.ts, which asks the host for the text on the first decode that needs them.
 */
const legacyTablesFromHost: Plugin = {
  name: 'cordon-legacy-tables-from-host',
  setup(build) {
    build.onResolve({ filter: /multi-byte\.encodings\.cjs$/ }, () => ({ path: `${dir}legacy-tables.ts` }));
  },
};

/**
 * The url unit takes URL and URLSearchParams of whatwg-url, installed as its index.js installs them,
 * and the parser and serializer of URL records; its index.js also loads the URL-string validator
 * (~10 KB), which nothing here calls.
 */
const whatwgUrlClassesOnly: Plugin = {
  name: 'cordon-whatwg-url-classes-only',
  setup(build) {
    build.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'whatwg-url-classes' }));
    build.onLoad({ filter: /.*/, namespace: 'whatwg-url-classes' }, () => ({
      contents: [
        "const { URL, URLSearchParams } = require('whatwg-url/webidl2js-wrapper');",
        'const sharedGlobalObject = { Array, Object, Promise, String, TypeError };',
        "URL.install(sharedGlobalObject, ['Window']);",
        "URLSearchParams.install(sharedGlobalObject, ['Window']);",
        'exports.URL = sharedGlobalObject.URL;',
        'exports.URLSearchParams = sharedGlobalObject.URLSearchParams;',
        "const usm = require('whatwg-url/lib/url-state-machine');",
        'exports.parseURL = usm.parseURL;',
        'exports.serializeURL = usm.serializeURL;',
      ].join('\n'),
      loader: 'js',
      resolveDir: dir,
    }));
  },
};

/**
 * whatwg-url's checks that every URL with a host runs, as loops over code units rather than regular
 * expressions: V8 compiles each regular expression in each new isolate on its first use (~30 µs each), and
 * most workers parse their first request's URL (`new URL(request.url)`). The same results:
 * web-platform.test.ts compares URLs parsed in an isolate with the package's own parser.
 */
const WHATWG_URL_EDITS: Record<string, [string, string][]> = {
  'infra.js': [
    [
      '  return !/[^\\u0000-\\u007F]/u.test(string);',
      '  for (let i = 0; i < string.length; i++) if (string.charCodeAt(i) > 0x7f) return false;\n  return true;',
    ],
  ],
  'url-miscellaneous.js': [
    [
      '  let regex = /[^0-7]/u;\n  if (R === 10) {\n    regex = /[^0-9]/u;\n  }\n  if (R === 16) {\n    regex = /[^0-9A-Fa-f]/u;\n  }\n\n  if (regex.test(input)) {\n    return failure;\n  }\n',
      '  for (let i = 0; i < input.length; i++) {\n    const c = input.charCodeAt(i);\n    if (!(R === 16 ? (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66) : c >= 0x30 && c < 0x30 + R)) return failure;\n  }\n',
    ],
    [
      '  if (/^[0-9]+$/u.test(last)) {',
      '  if (last.length > 0 && ((s) => { for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x30 || s.charCodeAt(i) > 0x39) return false; return true; })(last)) {',
    ],
  ],
  'url-state-machine.js': [
    [
      '  return url.replace(/\\u0009|\\u000A|\\u000D/ug, "");',
      '  let out = "";\n  let from = 0;\n  for (let i = 0; i < url.length; i++) {\n    const c = url.charCodeAt(i);\n    if (c === 0x09 || c === 0x0a || c === 0x0d) {\n      out += url.slice(from, i);\n      from = i + 1;\n    }\n  }\n  return from === 0 ? url : out + url.slice(from);',
    ],
  ],
};

/** `source` with each edit made, or undefined when an edit's text is not there exactly once. */
function editOnce(source: string, edits: [string, string][]): string | undefined {
  let out = source;
  for (const [from, to] of edits) {
    if (out.split(from).length !== 2) return undefined;
    out = out.replace(from, () => to);
  }
  return out;
}

const whatwgUrlWithoutRegExps: Plugin = {
  name: 'cordon-whatwg-url-without-regexps',
  setup(build) {
    build.onLoad({ filter: /[\\/]whatwg-url[\\/]lib[\\/](infra|url-miscellaneous)\.js$/ }, async (args) => {
      const file = args.path.slice(args.path.search(/(infra|url-miscellaneous)\.js$/));
      const contents = editOnce(await readFile(args.path, 'utf8'), WHATWG_URL_EDITS[file]!);
      if (contents === undefined) return { errors: [{ text: `${args.path}: whatwg-url changed; bootstrap-bundle.ts (WHATWG_URL_EDITS) must be updated` }] };
      return { contents, loader: 'js' };
    });
  },
};

/**
 * whatwg-url's parser gets the isolate's cache of parsed URLs in front (url-parse-cache.ts, the snapshot's:
 * it takes Map's methods before tenant code runs); URL-impl.js calls it through the module's exports.
 */
const PARSE_EXPORT = 'module.exports.basicURLParse = function (input, options = {}) {';
const urlParseCache: Plugin = {
  name: 'cordon-url-parse-cache',
  setup(build) {
    build.onLoad({ filter: /[\\/]whatwg-url[\\/]lib[\\/]url-state-machine\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (source.split(PARSE_EXPORT).length !== 2)
        return { errors: [{ text: `${args.path}: whatwg-url changed; bootstrap-bundle.ts (urlParseCache) must be updated` }] };
      const wrap = `module.exports.basicURLParse = ${LIBS_GLOBAL}.url.withParseCache(module.exports.basicURLParse);`;
      const contents = editOnce(source, WHATWG_URL_EDITS['url-state-machine.js']!);
      if (contents === undefined) return { errors: [{ text: `${args.path}: whatwg-url changed; bootstrap-bundle.ts (WHATWG_URL_EDITS) must be updated` }] };
      return { contents: `${contents}\n${wrap}\n`, loader: 'js' };
    });
  },
};

/**
 * The legacy multi-byte decoders are a lazy unit (multibyte-unit.ts): the package's `encoding.js`, which
 * wires them into its TextDecoder, is given functions that load the unit on the first such decoder. The
 * unit reads the package's own encoder (not in its exports) from the file, and its tables through the
 * snapshot's legacy-tables.ts (exported by encoding.ts), whose host callback the init half set.
 */
const MULTIBYTE_IMPORTS = "import { createMultibyteDecoder } from '@exodus/bytes/multi-byte.js'\nimport { multibyteEncoder } from './fallback/multi-byte.js'\n";
const multibyteOnFirstUse: Plugin = {
  name: 'cordon-multibyte-on-first-use',
  setup(build) {
    build.onLoad({ filter: /[\\/]@exodus[\\/]bytes[\\/]encoding\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (source.split(MULTIBYTE_IMPORTS).length !== 2)
        return { errors: [{ text: `${args.path}: @exodus/bytes changed; bootstrap-bundle.ts (multibyteOnFirstUse) must be updated` }] };
      const lazy = [
        `import { unit } from ${JSON.stringify(`${dir}units.ts`)};`,
        "const createMultibyteDecoder = (encoding, loose) => unit('multibyte').createMultibyteDecoder(encoding, loose);",
        "const multibyteEncoder = (encoding, onError) => unit('multibyte').multibyteEncoder(encoding, onError);",
        '',
      ].join('\n');
      return { contents: source.replace(MULTIBYTE_IMPORTS, lazy), loader: 'js' };
    });
  },
};
/**
 * What @exodus/bytes reads of the global scope as its modules load, as the snapshot saw it (no `Buffer`,
 * `atob` or `btoa` yet, no native TextEncoder/TextDecoder, neither Hermes nor Deno): the unit loads after a
 * worker may have set them, and its copies of these modules must behave as the snapshot's do.
 */
const EXODUS_LOAD_TIME: [file: RegExp, from: string, to: string][] = [
  [/[\\/]fallback[\\/]_utils\.js$/, 'const Buffer = /* @__PURE__ */ (() => globalThis.Buffer)()', 'const Buffer = undefined'],
  [/[\\/]fallback[\\/]latin1\.js$/, 'const atob = /* @__PURE__ */ (() => globalThis.atob)()', 'const atob = undefined'],
  [/[\\/]@exodus[\\/]bytes[\\/]base64\.js$/, 'const { Buffer, atob, btoa } = globalThis', 'const Buffer = undefined, atob = undefined, btoa = undefined'],
  [/[\\/]fallback[\\/]platform\.native\.js$/, 'const { Buffer } = globalThis', 'const Buffer = undefined'],
  [/[\\/]fallback[\\/]platform\.native\.js$/, 'export const isHermes = /* @__PURE__ */ (() => !!globalThis.HermesInternal)()', 'export const isHermes = false'],
  [/[\\/]fallback[\\/]platform\.native\.js$/, 'export const isDeno = /* @__PURE__ */ (() => !!globalThis.Deno)()', 'export const isDeno = false'],
  [
    /[\\/]fallback[\\/]platform\.native\.js$/,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the package's source text, matched as written
    "let isNative = (x) => x && (haveNativeBuffer || `${x}`.includes('[native code]'))",
    'let isNative = () => false',
  ],
];
const multibyteUnit: Plugin = {
  name: 'cordon-multibyte-unit',
  setup(build) {
    build.onLoad({ filter: /[\\/]@exodus[\\/]bytes[\\/].*\.js$/ }, async (args) => {
      const edits = EXODUS_LOAD_TIME.filter(([file]) => file.test(args.path));
      if (!edits.length) return undefined;
      let contents = await readFile(args.path, 'utf8');
      for (const [, from, to] of edits) {
        if (contents.split(from).length !== 2)
          return { errors: [{ text: `${args.path}: @exodus/bytes changed; bootstrap-bundle.ts (EXODUS_LOAD_TIME) must be updated` }] };
        contents = contents.replace(from, to);
      }
      return { contents, loader: 'js' };
    });
    build.onResolve({ filter: /^@exodus\/bytes\/fallback\/multi-byte\.js$/ }, () => ({
      path: join(dirname(createRequire(import.meta.url).resolve('@exodus/bytes/multi-byte.js')), 'fallback/multi-byte.js'),
    }));
    build.onResolve({ filter: /multi-byte\.encodings\.cjs$/ }, () => ({ path: 'legacy-tables', namespace: 'snapshot-tables' }));
    build.onLoad({ filter: /.*/, namespace: 'snapshot-tables' }, () => ({
      contents: `export default ${LIBS_GLOBAL}.encoding.loadLegacyTables;`,
      loader: 'js',
    }));
  },
};

/**
 * html-rewriter-wasm's glue is written for Node: its `fs`, `util` and `assert` are stand-ins from
 * html-rewriter.ts (the wasm bytes come from the host), and it compiles and instantiates the wasm with the
 * built-ins the lockdown kept for the runtime's own modules, charged to the worker's memory.
 */
const htmlRewriterGlue: Plugin = {
  name: 'cordon-html-rewriter-glue',
  setup(build) {
    const inPackage = /[\\/]html-rewriter-wasm[\\/]/;
    build.onResolve({ filter: /^(fs|util|assert|cordon:webassembly)$/ }, (args) =>
      inPackage.test(args.importer) ? { path: args.path, namespace: 'html-rewriter-stand-in' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'html-rewriter-stand-in' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`${dir}html-rewriter.ts`)}).nodeStandIns[${JSON.stringify(args.path === 'cordon:webassembly' ? 'webAssembly' : args.path)}];`,
      loader: 'js',
      resolveDir: dir,
    }));
    build.onLoad({ filter: /[\\/]html-rewriter-wasm[\\/]dist[\\/]html_rewriter\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const contents = source
        // wasm-bindgen writes its requires as String.raw templates, which a bundler does not follow.
        .replace(/require\(String\.raw`([^`]+)`\)/g, (_, id: string) => `require(${JSON.stringify(id)})`)
        .replace("require('path').join(__dirname, 'html_rewriter_bg.wasm')", "'html_rewriter_bg.wasm'")
        .replace('new WebAssembly.Module(bytes)', "require('cordon:webassembly').Module(bytes)")
        .replace('new WebAssembly.Instance(wasmModule, imports)', "require('cordon:webassembly').Instance(wasmModule, imports)");
      if (contents.includes('new WebAssembly') || contents.includes('__dirname'))
        return { errors: [{ text: `${args.path}: html-rewriter-wasm changed; bootstrap-bundle.ts must be updated` }] };
      return { contents, loader: 'js' };
    });
  },
};

/**
 * urlpattern-polyfill canonicalizes hostnames and ports by an older reading of the URLPattern standard
 * (it refuses `bad#hostname` and `80x`). The standard runs the URL parser with a state override, as the
 * URL's `hostname`/`port` setters do, and refuses only what that parser refuses: the two callbacks are
 * replaced by that. whatwg-url's setters ignore a failure, so it is seen as a setter that changed
 * neither of two URLs with different values.
 */
const URLPATTERN_CALLBACKS: [name: string, label: string, replacement: string][] = [
  [
    'j',
    'hostnameEncodeCallback',
    'function j(e){if(e==="")return e;let t=new URL("https://a.invalid"),r=new URL("https://b.invalid");t.hostname=e;r.hostname=e;if(t.hostname==="a.invalid"&&r.hostname==="b.invalid")throw new TypeError("Invalid hostname \'"+e+"\'");return t.hostname}',
  ],
  [
    'G',
    'portEncodeCallback',
    'function G(e){if(e==="")return e;let t=new URL("x://h:1"),r=new URL("x://h:2");t.port=e;r.port=e;if(t.port==="1"&&r.port==="2")throw new TypeError("Invalid port \'"+e+"\'.");return t.port}',
  ],
];
const urlpatternCallbacks: Plugin = {
  name: 'cordon-urlpattern-callbacks',
  setup(build) {
    build.onLoad({ filter: /[\\/]urlpattern-polyfill[\\/]dist[\\/]urlpattern\.js$/ }, async (args) => {
      let contents = await readFile(args.path, 'utf8');
      for (const [name, label, replacement] of URLPATTERN_CALLBACKS) {
        // The minified function runs from `function <name>(` up to the `a(<name>,"<label>")` that names it.
        const end = contents.indexOf(`a(${name},"${label}")`);
        const start = end < 0 ? -1 : contents.lastIndexOf(`function ${name}(e){`, end);
        if (start < 0 || end - start > 400) return { errors: [{ text: `${args.path}: urlpattern-polyfill changed; bootstrap-bundle.ts must be updated` }] };
        contents = contents.slice(0, start) + replacement + contents.slice(end);
      }
      return { contents, loader: 'js' };
    });
  },
};

/**
 * A Response whose body is held as bytes (not a stream) up to this size crosses Workers RPC with them in
 * its message, as capnweb's reader accepts, instead of as a stream of its own: a stream is a pipe, a pull
 * and its chunks (trips between the isolates and the host), and the Response its receiver returns is then
 * itself streamed out of the sandbox. A hello-sized Dynamic Worker's answer is this case.
 */
const RPC_INLINE_BODY = 16 * 1024;

/**
 * capnweb carries Workers RPC between isolates; what it has no form for (Map, Set, RegExp, cycles, …)
 * travels as a tagged value inside its messages (rpc-clone.ts). Its serializer is patched at these
 * points: arguments and results go through rpc-clone's choice, a `Cloned` is written as
 * `["clone", text, holes]`, and the reader turns that back into the value. It is a lazy unit, loaded
 * after the init half's lockdown, so two of its load-time lookups are patched too: its RpcTarget is the
 * snapshot's (capnweb.ts), which classes extend before the unit loads; the async function prototype
 * it classifies by is read without `.constructor` (which the lockdown replaced); and it takes no global
 * `Buffer` a worker may have set by then (there was none when it loaded into the snapshot). A Response
 * holding its body as bytes sends them in the message (RPC_INLINE_BODY). Bytes' base64 loses its padding
 * without a regular expression (V8 compiles one in each new isolate, on its first use). An error the other
 * side threw (a "reject") is marked `remote`, as workerd marks it.
 */
const capnwebClones: Plugin = {
  name: 'cordon-capnweb-clones',
  setup(build) {
    build.onLoad({ filter: /[\\/]capnweb[\\/]dist[\\/]index\.js$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      const patches: [string, string, number][] = [
        [
          'case "unsupported": {\n\t\t\t\tlet msg;',
          'case "unsupported": {\nif (value instanceof __Cloned) return ["clone", value.text, this.devaluateImpl(value.holes, value, depth + 1)];\n\t\t\t\tlet msg;',
          1,
        ],
        [
          'Devaluator.devaluate(args.value, void 0, this, args, this.encodingLevel)',
          'Devaluator.devaluate(__cloneArgs(args.value, typeForRpc), void 0, this, args, this.encodingLevel)',
          2,
        ],
        [
          'Devaluator.devaluate(payload.value, void 0, this, payload, this.encodingLevel)',
          'Devaluator.devaluate(__cloneResult(payload.value, typeForRpc), void 0, this, payload, this.encodingLevel)',
          1,
        ],
        ['let RpcTarget$1 = workersModule ? workersModule.RpcTarget : class {};', 'let RpcTarget$1 = __RpcTarget;', 1],
        // The streams are loaded on first use (streams.ts): a value is a stream only once they are, and
        // telling what a value is must not load them.
        ['case WritableStream.prototype: return "writable";', 'case __streamClassOrNone("WritableStream").prototype: return "writable";', 1],
        ['case ReadableStream.prototype: return "readable";', 'case __streamClassOrNone("ReadableStream").prototype: return "readable";', 1],
        ['instanceof ReadableStream', 'instanceof __streamClassOrNone("ReadableStream")', 4],
        // So are the URL classes (url.ts), and a URL received is the runtime's class, not what the global now is.
        ['case URL.prototype: return "url";', 'case __urlClassOrNone("URL").prototype: return "url";', 1],
        ['return new URL(value[1]);', 'return new (__url().URL)(value[1]);', 1],
        ['const AsyncFunction = (async function() {}).constructor;', 'const AsyncFunction = { prototype: Object.getPrototypeOf(async function() {}) };', 1],
        ['let BUFFER_PROTOTYPE = typeof Buffer !== "undefined" ? Buffer.prototype : void 0;', 'let BUFFER_PROTOTYPE = void 0;', 1],
        ['b64 = b64.replace(/=+$/, "");', 'for (let end = b64.length; ; end--) if (b64[end - 1] !== "=") { b64 = b64.slice(0, end); break; }', 1],
        [
          'let body = this.devaluateImpl(resp.body, resp, depth + 1);',
          `let body = this.devaluateImpl(__takeBodyBytes(resp, ${RPC_INLINE_BODY}) ?? resp.body, resp, depth + 1);`,
          1,
        ],
        // What the other side threw is marked `remote`, as workerd marks it (capnweb.ts `remote`).
        ['imp.resolve(new ErrorStubHook(payload.value));', 'imp.resolve(new ErrorStubHook(__remote(payload.value)));', 1],
        [
          '\t\t\t\tcase "import":\n',
          '\t\t\t\tcase "clone":\nif (value.length === 3 && typeof value[1] === "string" && value[2] instanceof Array) return __decodeClone(value[1], this.evaluateImpl(value[2], parent, property, depth + 1), this.limits);\nbreak;\n\t\t\t\tcase "import":\n',
          1,
        ],
      ];
      let contents = source;
      for (const [from, to, count] of patches) {
        if (contents.split(from).length - 1 !== count)
          return { errors: [{ text: `${args.path}: capnweb changed; bootstrap-bundle.ts (capnwebClones) must be updated` }] };
        contents = contents.replaceAll(from, to);
      }
      return {
        contents: `import { Cloned as __Cloned, cloneArgs as __cloneArgs, cloneResult as __cloneResult, decodeClone as __decodeClone, takeBodyBytes as __takeBodyBytes } from './rpc-clone.ts';\nimport { RpcTarget as __RpcTarget, remote as __remote } from './capnweb.ts';\nimport { streamClassOrNone as __streamClassOrNone } from './streams.ts';\nimport { url as __url, urlClassOrNone as __urlClassOrNone } from './url.ts';\n${contents}`,
        loader: 'js',
      };
    });
  },
};

/**
 * The bootstrap runs in every isolate: a schema library pulled in by a value import from `schemas/`
 * (zod's module-level schemas cannot be tree-shaken) would cost every isolate its code and heap. A shared
 * constant goes in a zod-free module instead; this makes the mistake a build error rather than a quiet loss.
 */
const noSchemaLibrary: Plugin = {
  name: 'cordon-no-schema-library',
  setup(build) {
    build.onResolve({ filter: /^zod(\/|$)/ }, (args) => ({
      errors: [{ text: `${args.importer} imports zod into the isolate bootstrap: move the values it needs to a module without zod` }],
    }));
  },
};

/**
 * The streams polyfill and whatwg-url are lazy units (streams-unit.ts, url-unit.ts) and nothing else may
 * bundle them: a value import of one from a bootstrap module would put a second copy in every isolate,
 * whose objects the first's do not know.
 */
const onlyInTheirUnits: Plugin = {
  name: 'cordon-only-in-their-units',
  setup(build) {
    build.onResolve({ filter: /^web-streams-polyfill(\/|$)/ }, (args) =>
      args.importer.endsWith(`${sep}streams-unit.ts`)
        ? undefined
        : { errors: [{ text: `${args.importer} imports web-streams-polyfill: use streams() or streamClassOrNone() from streams.ts` }] },
    );
    // The unit's own entry, and the module whatwgUrlClassesOnly makes of the package for it.
    build.onResolve({ filter: /^whatwg-url(\/|$)/ }, (args) =>
      args.importer.endsWith(`${sep}url-unit.ts`) || args.namespace === 'whatwg-url-classes'
        ? undefined
        : { errors: [{ text: `${args.importer} imports whatwg-url: use url() or urlClassOrNone() from url.ts` }] },
    );
  },
};

/** `globalName`: the IIFE's exports are left in a `var` of that name (for a script run as a function body that returns it). */
async function bundle(entry: string, plugins: Plugin[], globalName?: string, define?: Record<string, string>): Promise<string> {
  const result = await build({
    entryPoints: [dir + entry],
    bundle: true,
    format: 'iife',
    ...(globalName ? { globalName } : {}),
    ...(define ? { define } : {}),
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    write: false,
    legalComments: 'none',
    minifyWhitespace: true,
    logLevel: 'silent',
    plugins: [noSchemaLibrary, onlyInTheirUnits, ...plugins],
    // Strict mode for all of it: no sloppy-mode frame hands its function to a tenant's
    // Error.prepareStackTrace (CallSite.getFunction()).
    banner: { js: '"use strict";' },
  });
  return result.outputFiles[0]!.text;
}

/**
 * Run once while the snapshot is made, so the snapshot carries compiled code for the paths nearly
 * every request takes (V8 otherwise compiles them lazily in each new isolate, on its first request).
 * ~40 KB more snapshot; the first request in a new isolate is ~2 ms faster. The streams' paths are not
 * run: a hello-world, a body echoed and a loaded Worker's fetch() (its answer crosses as bytes) never
 * make a stream, and compiling them here cost every isolate ~70 KiB and ~0.1–0.3 ms of its creation;
 * an isolate that streams compiles them on its first stream. The URL classes are not in the snapshot at all
 * (the url unit), and a request's URL that is its own href is not parsed.
 */
const WARMUP = `{
  const { Request, Response, Headers } = globalThis.${LIBS_GLOBAL}.fetchApi;
  const req = new Request('http://warm.up/a?b=c', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' });
  const res = Response.json({ a: 1 }, { headers: new Headers(req.headers) });
  for (const _ of res.headers) {}
  new Response('x', { status: 201 }).headers.get('content-type');
  // Every library export read once: esbuild's export getters, which each isolate's init half reads.
  for (const lib of Object.values(globalThis.${LIBS_GLOBAL})) for (const k of Object.keys(lib)) lib[k];
  req.text();
  res.text();
  // What a request's answer runs of Body and Headers (response-out.ts serialize), and RpcTarget's constructor
  // (every entrypoint's super()): else each new isolate compiles them, a Dynamic Worker's on its one request.
  const { Body } = globalThis.${LIBS_GLOBAL}.fetchApi;
  const own = new Response('x');
  Body.check(own);
  Headers.raw(own.headers);
  Body.takeStream(own);
  Body.read(own).then((bytes) => Body.takeOut(own, bytes));
  new globalThis.${LIBS_GLOBAL}.capnweb.RpcTarget();
}`;

export interface Bootstrap {
  snapshot: ivm.ExternalCopy<ArrayBuffer>;
  /** The init half; its completion value is the bootstrap's entry dispatcher (TAKE_ENTRY). */
  init: string;
  /** The legacy multi-byte encodings' tables (JSON), handed to an isolate on its first use of one. */
  legacyTables: string;
  /** lol-html's WebAssembly (html-rewriter-wasm), handed to an isolate on its first HTMLRewriter. */
  htmlRewriterWasm: Buffer;
  /**
   * The same bytes compiled once here and kept: V8 shares a compiled module by its bytes across the
   * isolates of a process, so an isolate's first HTMLRewriter costs ~0.07 s of its CPU rather than ~0.4 s.
   */
  htmlRewriterModule: object;
  /** The Brotli codec's WebAssembly (brotli-wasm), handed to an isolate on its first Brotli call in node:zlib. */
  brotliWasm: Buffer;
  /** Compiled once here and kept, as htmlRewriterModule is. */
  brotliModule: object;
  /** console's describer of values (bootstrap/log-mirror.ts) as a function body returning its module, for an isolate's first console line with a value. */
  logMirror: string;
  /** The lazy units (bootstrap/units.ts): each a script whose value is its factory, and V8's code cache for it. */
  units: Record<keyof LazyUnits, Unit>;
}

export interface Unit {
  /** One string for the process: isolated-vm shares a large script's source between the isolates that compile it. */
  source: string;
  cache: ivm.ExternalCopy<ArrayBuffer> | undefined;
}

/**
 * esbuild `define`s rewriting each built-in in `names` in a unit's code to its entry in that unit's PINNED
 * (units.ts `pinned`, taken in the snapshot): a unit loads after tenant code may have run. What a unit reads
 * off a prototype (whatwg-url keeps buffer brand-check getters and an uncurried `call` as it loads) is the
 * isolate's own at that moment: no URL or URLSearchParams path calls those (they convert strings, records and
 * sequences only).
 */
const pinnedNames = (unit: 'streams' | 'url', names: readonly string[]): Record<string, string> =>
  Object.fromEntries(names.map((path) => [path, `${LIBS_GLOBAL}.${unit}.PINNED.${units.pinnedKey(path)}`]));

/**
 * What a unit's names mean, where they must not be the global scope's as a tenant left it (esbuild's `define`),
 * and the bindings the unit's script declares for them first (`prelude`). urlpattern-polyfill canonicalizes
 * with the global `URL` as it runs: in its unit `URL` is the runtime's class (the url unit's, loaded with
 * it), so a worker that replaced the global does not steer its patterns.
 */
const UNIT_NAMES: Partial<Record<keyof LazyUnits, { define: Record<string, string>; prelude?: string }>> = {
  // The polyfill reads DOMException off `globalThis` as it loads, and nothing else.
  streams: { define: { ...pinnedNames('streams', streams.PINNED_NAMES), globalThis: `${LIBS_GLOBAL}.streams.PINNED` } },
  url: { define: pinnedNames('url', url.PINNED_NAMES) },
  urlpattern: { define: { URL: '__cordonUrl' }, prelude: `const __cordonUrl = ${LIBS_GLOBAL}.url.url().URL;\n` },
};

/** A lazy unit's script: a function expression taking the snapshot's library objects and returning the unit's exports. */
async function unitScript(name: keyof LazyUnits): Promise<string> {
  const entry = LAZY_UNITS[name];
  const names = UNIT_NAMES[name];
  const iife = await bundle(
    entry.slice(2),
    [
      fromSnapshot(LIBS_GLOBAL, FOR_UNITS),
      capnwebClones,
      multibyteUnit,
      urlpatternCallbacks,
      whatwgUrlClassesOnly,
      whatwgUrlImports,
      urlParseCache,
      whatwgUrlWithoutRegExps,
    ],
    'unit',
    names?.define,
  );
  return `(function (${LIBS_GLOBAL}) {\n${names?.prelude ?? ''}${iife}\nreturn unit;\n})`;
}

/**
 * Compiled once in a scratch isolate, for the code cache every isolate's first use of the unit compiles
 * from. The scratch isolate starts from the same snapshot: V8 refuses a cache made in an isolate without it.
 * Compiled alone, the cache holds the unit's top level, not its inner functions: the RPC unit's, on every
 * Dynamic Worker's path, is made again after a rehearsal (instance.ts, rehearsedCaches).
 */
function unitCache(source: string, name: string, snapshot: ivm.ExternalCopy<ArrayBuffer>): ivm.ExternalCopy<ArrayBuffer> | undefined {
  const scratch = new ivm.Isolate({ memoryLimit: 64, snapshot });
  try {
    return (scratch.compileScriptSync(source, { filename: `cordon:${name}`, produceCachedData: true }) as ivm.Script & ivm.CachedDataResult).cachedData;
  } finally {
    scratch.dispose();
  }
}

/** Compiled in this process so that V8 shares the code with each isolate that compiles the same bytes. */
const compileHere = (bytes: Uint8Array) => (globalThis as unknown as { WebAssembly: { compile(b: Uint8Array): Promise<object> } }).WebAssembly.compile(bytes);

let cached: Promise<Bootstrap> | undefined;

/** Built once per process; every isolate starts from the snapshot and runs `init` in its context. */
export function bootstrap(): Promise<Bootstrap> {
  cached ??= (async () => {
    const names = Object.keys(LAZY_UNITS) as (keyof LazyUnits)[];
    const [libs, init, mirror, ...unitSources] = await Promise.all([
      bundle('libs.ts', [legacyTablesFromHost, multibyteOnFirstUse]),
      bundle('index.ts', [fromSnapshot(`globalThis.${LIBS_GLOBAL}`), htmlRewriterGlue]),
      bundle('log-mirror.ts', [], 'logMirror'),
      ...names.map((name) => unitScript(name)),
    ]);
    // esbuild's service process is not needed again, and must not outlive the sandbox's lockdown.
    await stop();
    // Read now, with the bootstrap: a sandbox reads no files once it is locked down.
    // (The file is not in the package's exports: found beside its multi-byte module.)
    const multiByte = createRequire(import.meta.url).resolve('@exodus/bytes/multi-byte.js');
    const legacyTables = await readFile(join(dirname(multiByte), 'fallback/multi-byte.encodings.json'), 'utf8');
    const htmlRewriterWasm = await readFile(join(dirname(createRequire(import.meta.url).resolve('html-rewriter-wasm')), 'html_rewriter_bg.wasm'));
    const htmlRewriterModule = await compileHere(htmlRewriterWasm);
    // The package's web build, whose glue cli/nodejs-compat.ts bundles into workers that import node:zlib.
    const brotliWasm = await readFile(join(dirname(createRequire(import.meta.url).resolve('brotli-wasm')), 'pkg.web/brotli_wasm_bg.wasm'));
    const brotliModule = await compileHere(brotliWasm);
    const snapshot = ivm.Isolate.createSnapshot([{ code: libs, filename: 'cordon:libs' }], WARMUP);
    return {
      snapshot,
      init: init + TAKE_ENTRY,
      legacyTables,
      htmlRewriterWasm,
      htmlRewriterModule,
      brotliWasm,
      brotliModule,
      logMirror: `${mirror}\nreturn logMirror;`,
      units: Object.fromEntries(names.map((name, i) => [name, { source: unitSources[i]!, cache: unitCache(unitSources[i]!, name, snapshot) }])) as Record<
        keyof LazyUnits,
        Unit
      >,
    };
  })();
  return cached;
}
