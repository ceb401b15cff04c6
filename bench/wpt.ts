/**
 * web-platform-tests for the web globals, run in a worker on the real workerd and on Cordon's runtime, and
 * compared per area: of the subtests workerd passes, how many Cordon passes (docs/compatibility.md).
 *
 *   npm run wpt -- <path-to-a-wpt-checkout> [--area <name>] [--filter <substring>] [--out <file.json>]
 *                  [--workerd-cache <file.json>]
 *
 * Not part of `npm test`: the WPT sources are not in this repository, and a full run takes minutes.
 *
 * How a test file runs. Each `*.any.js` whose `META: global=` includes a worker scope (or names none) and
 * each `*.worker.js` becomes one ES module worker: testharness.js, the `META: script=` dependencies and the
 * test, concatenated in that order (as the WPT server's worker wrapper imports them) inside one function
 * that the worker's fetch handler calls — workerd refuses timers and I/O at a module's top level, so the
 * tests must start inside a request. testharness.js is told to use its shell environment (workerd's global
 * is a ServiceWorkerGlobalScope, whose environment would wait for a client's message), `location` is the
 * test's URL on a fictitious WPT origin, and `fetch()` of a JSON file beside the test (url/urlpattern test
 * data) is answered from the file's text, embedded; every other fetch goes out as usual and fails here, on
 * both runtimes alike. The results are testharness's own (name, status, message), returned as JSON. The
 * same module runs on both runtimes, so what the wrapper changes, it changes for both.
 *
 * Bounds: a file reports what finished after FILE_MS (the rest counts as not passed); the host gives up
 * on a file after HOST_MS. workerd runs one process per area (a router worker with a service binding to
 * each test's worker, each in its own isolate); Cordon runs in-process through the sandbox's runtime
 * (`WorkerRuntime`, the isolate a sandbox process runs, without the mesh's HTTP and RPC hops — thousands of
 * subtests through the mesh would measure the mesh, not the globals).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { WorkerRuntime } from '../services/sandbox/runtime/index.ts';
import { freePort, ROOT } from '../test/helpers/mesh.ts';

const AREAS: Record<string, string> = {
  url: 'url',
  encoding: 'encoding',
  'fetch headers': 'fetch/api/headers',
  'fetch request': 'fetch/api/request',
  'fetch response': 'fetch/api/response',
  streams: 'streams',
  WebCryptoAPI: 'WebCryptoAPI',
  atob: 'html/webappapis/atob',
  'structured-clone': 'html/webappapis/structured-clone',
  urlpattern: 'urlpattern',
  compression: 'compression',
  'dom/abort': 'dom/abort',
  'dom/events': 'dom/events',
};
const FILE_MS = 20_000;
const HOST_MS = 40_000;
const ORIGIN = 'http://web-platform.test:8000';
const COMPAT_DATE = '2026-07-01';

interface SubResult {
  name: string;
  status: number; // testharness: 0 PASS, 1 FAIL, 2 TIMEOUT, 3 NOTRUN, 4 PRECONDITION_FAILED
  message: string | null;
}
interface FileResult {
  harness: string;
  tests: SubResult[];
}
type Results = Record<string, FileResult>; // by test path

/** The test files of one area: `.any.js` for a worker scope and `.worker.js`, outside `resources/`. */
function testFiles(wpt: string, dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'resources' && e.name !== 'support') walk(p);
      } else if (e.name.endsWith('.any.js') || e.name.endsWith('.worker.js')) {
        const globals = meta(readFileSync(p, 'utf8'), 'global');
        const scopes = globals.flatMap((g) => g.split(',').map((s) => s.trim()));
        if (e.name.endsWith('.worker.js') || scopes.length === 0 || scopes.some((s) => /worker/.test(s))) out.push(relative(wpt, p));
      }
    }
  };
  walk(join(wpt, dir));
  return out.sort();
}

function meta(source: string, key: string): string[] {
  const re = new RegExp(`^//\\s*META:\\s*${key}=(.*)$`, 'gm');
  return [...source.matchAll(re)].map((m) => m[1]!.trim());
}

/** The worker module for one test file (see the header). */
function workerModule(wpt: string, file: string): string {
  const source = readFileSync(join(wpt, file), 'utf8');
  // The WPT server serves /resources/WebIDLParser.js from the webidl2 package it vendors.
  // A .worker.js names its own dependencies with importScripts() (testharness.js is prepended anyway).
  const imported = file.endsWith('.worker.js')
    ? [...source.matchAll(/importScripts\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!).filter((s) => !/testharness(report)?\.js$/.test(s))
    : [];
  const scripts = [...meta(source, 'script'), ...imported]
    .map((s) => (s.startsWith('/') ? s.slice(1) : join(dirname(file), s)))
    .map((s) => (s === 'resources/WebIDLParser.js' ? 'resources/webidl2/lib/webidl2.js' : s));
  const harness = readFileSync(join(wpt, 'resources/testharness.js'), 'utf8').replace(
    'function create_test_environment() {',
    'function create_test_environment() { return new ShellTestEnvironment();',
  );
  // A dependency missing from the checkout throws where it would have run, on both runtimes alike.
  const read = (s: string) => (existsSync(join(wpt, s)) ? readFileSync(join(wpt, s), 'utf8') : `throw new Error('not in the checkout: ${s}');`);
  // Module code is strict, and WPT's scripts are not: a top-level assignment to an undeclared name (a
  // classic script's implicit global, e.g. `structuredCloneBatteryOfTests = []`) is made explicit.
  const texts = [...scripts.map(read), source];
  const declared = new Set(texts.flatMap((t) => [...t.matchAll(/\b(?:var|let|const|function|class)\s+([A-Za-z_$][\w$]*)/g)].map((m) => m[1]!)));
  const sloppy = (text: string) =>
    text.replace(/^([A-Za-z_$][\w$]*)(\s*=[^=>])/gm, (all, name: string, rest: string) => (declared.has(name) ? all : `globalThis.${name}${rest}`));
  const tests = [...scripts.map((s, i) => `// ${s}\n${sloppy(texts[i]!)}`), `// ${file}\n${sloppy(source)}`];
  // JSON data files the test or its scripts name, served to its fetch() from memory.
  const data: Record<string, string> = {};
  // A relative name resolves against the test's URL (fetch() resolves against location), whoever names it.
  for (const text of [source, ...scripts.map(read)]) {
    const base = dirname(file);
    for (const m of text.matchAll(/["'`]([\w./-]+\.json)["'`]/g)) {
      const p = m[1]!.startsWith('/') ? m[1]!.slice(1) : join(base, m[1]!);
      if (existsSync(join(wpt, p)) && statSync(join(wpt, p)).size < 2_000_000) data[`/${p}`] = readFileSync(join(wpt, p), 'utf8');
    }
    // idlharness's idl_test() fetches /interfaces/<spec>.idl for the spec names it is given.
    for (const m of text.matchAll(/["']([\w-]+)["']/g)) {
      const p = `interfaces/${m[1]}.idl`;
      if (existsSync(join(wpt, p))) data[`/${p}`] = readFileSync(join(wpt, p), 'utf8');
    }
  }
  return `const __data = ${JSON.stringify(data)};
function __run(__report) {
  self.GLOBAL = { isWindow() { return false; }, isWorker() { return true; }, isShadowRealm() { return false; } };
  self.importScripts = () => {};
  if (!('location' in self)) self.location = new URL(${JSON.stringify(`${ORIGIN}/${file}`)});
  const __fetch = self.fetch;
  self.fetch = function (input, init) {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    if (url.origin === ${JSON.stringify(ORIGIN)} && Object.hasOwn(__data, url.pathname))
      return Promise.resolve(new Response(__data[url.pathname], { headers: { 'content-type': url.pathname.endsWith('.json') ? 'application/json' : 'text/plain' } }));
    return __fetch.call(this, input, init);
  };
  ${harness}
  ;
  // Registered before the tests: a synchronous test() reports as it is defined.
  add_result_callback((t) => __report.tests.push({ name: String(t.name), status: t.status, message: t.message == null ? null : String(t.message).slice(0, 300) }));
  add_completion_callback((_tests, status) => { __report.harness = ['OK', 'ERROR', 'TIMEOUT', 'PRECONDITION_FAILED'][status.status] + (status.message ? ': ' + String(status.message).slice(0, 300) : ''); __report.finish(); });
  ${tests.join('\n;\n')}
  ;
  done();
}
export default {
  async fetch() {
    const report = { harness: 'INCOMPLETE', tests: [] };
    const finished = new Promise((r) => { report.finish = r; });
    try { __run(report); } catch (e) { report.harness = 'THREW: ' + String(e && e.stack || e).slice(0, 500); report.finish(); }
    await Promise.race([finished, new Promise((r) => setTimeout(r, ${FILE_MS}))]);
    return new Response(JSON.stringify({ harness: report.harness, tests: report.tests }), { headers: { 'content-type': 'application/json' } });
  },
};
`;
}

const failed = (why: string): FileResult => ({ harness: `HOST: ${why}`, tests: [] });

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]);
}

/** One area's files on workerd: one process, a router worker, one worker (isolate) per file. */
async function runWorkerd(wpt: string, files: string[]): Promise<Results> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-wpt-'));
  try {
    return await runWorkerdIn(dir, wpt, files);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runWorkerdIn(dir: string, wpt: string, files: string[]): Promise<Results> {
  const port = await freePort();
  const services = files.map((f, i) => {
    writeFileSync(join(dir, `t${i}.js`), workerModule(wpt, f));
    return `(name = "t${i}", worker = (modules = [(name = "t${i}.js", esModule = embed "t${i}.js")], compatibilityDate = "${COMPAT_DATE}"))`;
  });
  writeFileSync(join(dir, 'router.js'), `export default { fetch(req, env) { return env['t' + new URL(req.url).pathname.slice(1)].fetch(req); } };`);
  const bindings = files.map((_, i) => `(name = "t${i}", service = "t${i}")`).join(', ');
  writeFileSync(
    join(dir, 'config.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "router", worker = (modules = [(name = "router.js", esModule = embed "router.js")], compatibilityDate = "${COMPAT_DATE}", bindings = [${bindings}])), ${services.join(', ')} ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "router") ],
);
`,
  );
  const proc = spawn(join(ROOT, 'node_modules/.bin/workerd'), ['serve', join(dir, 'config.capnp')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const out: Results = {};
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`workerd exited: ${stderr.slice(0, 2000)}`);
      try {
        await fetch(`http://127.0.0.1:${port}/none`, { signal: AbortSignal.timeout(2000) });
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('workerd did not listen within 60 s');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    for (const [i, f] of files.entries()) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/${i}`, { signal: AbortSignal.timeout(HOST_MS) });
        const text = await res.text();
        out[f] = res.ok ? (JSON.parse(text) as FileResult) : failed(`${res.status} ${text.slice(0, 300)}`);
      } catch (e) {
        out[f] = failed(String(e));
      }
    }
  } finally {
    proc.kill('SIGKILL');
  }
  return out;
}

/** One area's files on Cordon's runtime, in-process, one fresh isolate per file. */
async function runCordon(rt: WorkerRuntime, wpt: string, files: string[]): Promise<Results> {
  const out: Results = {};
  for (const [i, f] of files.entries()) {
    const bundle = {
      workerId: `wpt/t${i}-${Date.now()}`,
      version: 'w'.repeat(64),
      mainModule: 'test.js',
      modules: [{ name: 'test.js', type: 'esm' as const, content: workerModule(wpt, f) }],
      limits: { cpuMs: 30_000, wallMs: HOST_MS, memoryMb: 512 },
      vars: {},
      bindings: [],
    };
    try {
      const res = await bounded(rt.handle(bundle, { method: 'GET', url: `${ORIGIN}/${f}`, headers: [], body: null }, { log: () => {} }), HOST_MS + 5000, f);
      const text = new TextDecoder().decode(res.body ?? new Uint8Array());
      out[f] = res.status === 200 ? (JSON.parse(text) as FileResult) : failed(`${res.status} ${text.slice(0, 300)}`);
    } catch (e) {
      out[f] = failed(String(e).slice(0, 500));
    }
  }
  return out;
}

/** Pass counts by name within each file (names may repeat). */
function passes(r: FileResult | undefined): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of r?.tests ?? []) if (t.status === 0) m.set(t.name, (m.get(t.name) ?? 0) + 1);
  return m;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { area: { type: 'string', multiple: true }, filter: { type: 'string' }, out: { type: 'string' }, 'workerd-cache': { type: 'string' } },
  });
  const wpt = resolve(positionals[0] ?? '');
  if (!positionals[0] || !existsSync(join(wpt, 'resources/testharness.js'))) {
    console.error('usage: npm run wpt -- <path-to-a-wpt-checkout> [--area <name>] [--filter <substring>] [--out <file.json>] [--workerd-cache <file.json>]');
    console.error('The checkout needs resources/ and the areas: ' + Object.values(AREAS).join(', '));
    process.exit(2);
  }
  const areas = values.area?.length ? values.area : Object.keys(AREAS);
  for (const a of areas) if (!AREAS[a]) throw new Error(`unknown area ${a}; the areas: ${Object.keys(AREAS).join(', ')}`);
  const cachePath = values['workerd-cache'];
  const cache: Results = cachePath && existsSync(cachePath) ? (JSON.parse(readFileSync(cachePath, 'utf8')) as Results) : {};
  const rt = new WorkerRuntime({ maxIsolates: 4, idleMs: 2000, memoryBudgetMb: 4096 });
  const rows: string[] = [];
  const lost: Record<string, { file: string; name: string; cordon: string }[]> = {};
  const all: { workerd: Results; cordon: Results } = { workerd: {}, cordon: {} };
  let totalW = 0;
  let totalC = 0;
  try {
    for (const area of areas) {
      const files = testFiles(wpt, AREAS[area]!).filter((f) => !values.filter || f.includes(values.filter));
      const missing = files.filter((f) => !cache[f]);
      const started = Date.now();
      const w = { ...Object.fromEntries(files.filter((f) => cache[f]).map((f) => [f, cache[f]!])), ...(missing.length ? await runWorkerd(wpt, missing) : {}) };
      Object.assign(cache, w);
      const c = await runCordon(rt, wpt, files);
      Object.assign(all.workerd, w);
      Object.assign(all.cordon, c);
      let wp = 0;
      let cp = 0;
      let cordonOnly = 0;
      for (const f of files) {
        const pw = passes(w[f]);
        const pc = passes(c[f]);
        for (const [name, n] of pw) {
          wp += n;
          const k = Math.min(n, pc.get(name) ?? 0);
          cp += k;
          if (k < n) {
            const t = c[f]?.tests.find((x) => x.name === name);
            (lost[area] ??= []).push({ file: f, name, cordon: t ? `${t.status}: ${t.message}` : `missing (${c[f]?.harness})` });
          }
        }
        for (const [name, n] of pc) cordonOnly += Math.max(0, n - (pw.get(name) ?? 0));
      }
      totalW += wp;
      totalC += cp;
      const row = `| ${area} | ${files.length} | ${wp} | ${cp} | ${wp ? ((100 * cp) / wp).toFixed(1) : '–'}% | ${cordonOnly} |`;
      rows.push(row);
      console.log(`${row}   (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
  } finally {
    rt.dispose();
  }
  if (cachePath) writeFileSync(cachePath, JSON.stringify(cache));
  console.log('\n| area | files | subtests workerd passes | of those, Cordon passes | ratio | Cordon passes, workerd not |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) console.log(r);
  console.log(`| **all** | | ${totalW} | ${totalC} | ${totalW ? ((100 * totalC) / totalW).toFixed(1) : '–'}% | |`);
  if (values.out) writeFileSync(values.out, JSON.stringify({ lost, ...all }, null, 1));
}

await main();
