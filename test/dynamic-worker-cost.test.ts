/**
 * Issues 14 and 17: what a Dynamic Worker's load costs the sandbox's main thread, counted, not timed. A
 * parent loads a fresh Worker on every request (`env.LOADER.load(code)`, as `npm run bench --
 * dynamic-workers` does) and calls it: each load makes exactly one isolate (its own; no spare is shared),
 * made off the main thread (Isolate.createAsync, where isolated-vm was rebuilt: native/isolated-vm.mjs),
 * and compiles nothing synchronously on the main thread — its fetch() goes down the request path, and the
 * Workers RPC library a first session needs is compiled ahead, on the isolate's thread (WorkerInstance.unitAhead). Nor does a load look at every
 * Worker the parent already holds (a burst holds hundreds): those whose isolates went are swept by the
 * runtime's idle sweep and at the per-worker bound. Nor does it compile again, lazily, the runtime's
 * functions its first Workers RPC call runs: the code caches of the init half and of the RPC unit are made
 * after a rehearsal of that call (WorkerInstance rehearsedCaches), so they carry those functions compiled.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import ivm from 'isolated-vm';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  disposedLooksDone,
  isolatesMade,
  isolatesMadeSync,
  lastIsolate,
  postedCallbacks,
  scriptsCompiled,
  syncCompilesDone,
} from './helpers/isolate-copies.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one.
const { WorkerRuntime } = await import('../services/sandbox/runtime/index.ts');
const { GET, text, worker } = await import('../services/sandbox/runtime/testing/fixtures.ts');

const LOADS = 10;
// No idle sweep while the file runs (its first is 30 s in): a sweep looks at every isolate held, and one
// falling inside a measured phase on a slow machine would be counted as the loads' looks.
const rt = new WorkerRuntime({
  spares: 0,
  idleMs: 3_600_000,
  compactIdleMs: 3_600_000,
  dynamic: { perWorker: 200, idleMs: 3_600_000, loadsPerSecond: 1000 },
});
after(() => rt.dispose());

const parent = worker(
  `export default { async fetch(req, env) {
    const n = new URL(req.url).searchParams.get('n');
    const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
      modules: { 'w.js': 'export default { fetch() { return new Response("dynamic ' + n + '") } }' } });
    return w.getEntrypoint().fetch('http://dynamic/');
  } }`,
  { bindings: [{ type: 'loader', name: 'LOADER' }] },
);

const noAsync =
  !ivm.Isolate.createAsync && process.env.CORDON_REQUIRE_ALL !== '1' ? 'isolated-vm was not rebuilt with Isolate.createAsync (no g++ at npm install)' : false;

/** Responses of the parent that streamed out of the isolate. */
let streamed = 0;

async function load(n: number): Promise<void> {
  const res = await rt.handle(parent, { ...GET, url: `http://example.test/?n=${n}` }, { log: () => {} });
  if (res.stream) streamed++;
  const body = res.stream ? await new Response(res.stream).text() : text(res.body);
  assert.equal(`${res.status} ${body}`, `200 dynamic ${n}`);
}

test('a Dynamic Worker load: one isolate of its own, no synchronous compile on the main thread', async () => {
  // The parent's own isolate and its first use of each library are not per load.
  for (let i = 0; i < 2; i++) await load(-1 - i);
  const [isolates, compiles] = [isolatesMade(), syncCompilesDone()];
  for (let i = 0; i < LOADS; i++) await load(i);
  assert.equal((isolatesMade() - isolates) / LOADS, 1, 'isolates made per load');
  assert.equal((syncCompilesDone() - compiles) / LOADS, 0, 'scripts compiled synchronously on the main thread per load');
});

test("a loaded Worker's isolate is held through a few References, not one per entry point and callback", async () => {
  await load(50);
  // The isolate made last is the loaded Worker's (its parent's was made before). Each Reference the host
  // holds was made by a call into the isolate (synchronous on the main thread, as the setup did it): ~50
  // with one per bootstrap entry point (21) and one per host callback set; now its context, the entry
  // dispatcher, the watchdogs' probe, the RPC unit and its session's handles.
  const refs = lastIsolate()!.referenceCount;
  assert.ok(refs <= 16, `${refs} References into a loaded Worker's isolate`);
});

test("a loaded Worker's small answer crosses in the RPC message: the parent's response is not streamed", async () => {
  const [posted, was] = [postedCallbacks(), streamed];
  for (let i = 0; i < LOADS; i++) await load(200 + i);
  assert.equal(streamed - was, 0, 'responses streamed out of the parent');
  // Per load: the session's pipe opened, its messages both ways, its close, the answer (~7); with the body streamed, 12.
  const perLoad = (postedCallbacks() - posted) / LOADS;
  assert.ok(perLoad <= 9, `${perLoad} calls into the host per load`);
});

/**
 * A parent's fetch() through a loaded Worker's stub goes down the request path (worker-loader.ts
 * #fetchChild), not over Workers RPC: a Worker that is only fetched never compiles the RPC library
 * (0.3-0.5 ms of its isolate's CPU) and opens no session (0.8-1.5 ms more, and the parent's side of it).
 * An RPC method call still does both, once per Worker: the counts can see them.
 */
test('a loaded Worker only fetched never loads the Workers RPC library, and no RPC session is opened', async () => {
  // The parent's own isolate and the code caches made once (a rehearsal of Workers RPC among them) are not per load.
  for (let i = 0; i < 2; i++) await load(-10 - i);
  const [units, posted] = [scriptsCompiled('cordon:rpc'), postedCallbacks()];
  for (let i = 0; i < LOADS; i++) await load(300 + i);
  assert.equal(scriptsCompiled('cordon:rpc') - units, 0, 'Workers RPC libraries compiled for Workers only fetched');
  // Per load: the loaded Worker's answer and its parent's (\`done\`); a session adds its pipe's opening, its messages both ways and its close.
  const perLoad = (postedCallbacks() - posted) / LOADS;
  assert.ok(perLoad <= 2, `${perLoad} calls into the host per load`);

  const rpc = worker(
    `import { WorkerEntrypoint } from 'cloudflare:workers';
    export default { async fetch(req, env) {
      const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null,
        modules: { 'w.js': "import { WorkerEntrypoint } from 'cloudflare:workers'; export class N extends WorkerEntrypoint { twice(n) { return 2 * n } }; export default { fetch() { return new Response('f') } }" } });
      return new Response((await (await w.getEntrypoint().fetch('http://dynamic/')).text()) + (await w.getEntrypoint('N').twice(21)));
    } }`,
    { bindings: [{ type: 'loader', name: 'LOADER' }] },
  );
  const [before, opened] = [scriptsCompiled('cordon:rpc'), postedCallbacks()];
  const res = await rt.handle(rpc, GET, { log: () => {} });
  assert.equal(res.stream ? await new Response(res.stream).text() : text(res.body), 'f42');
  // In the loaded Worker's isolate, and in this new parent's own (its first session).
  assert.equal(scriptsCompiled('cordon:rpc') - before, 2, 'the RPC library compiled for an RPC method call');
  assert.ok(postedCallbacks() - opened > 4, 'an RPC method call opens a session');
});

test('a Dynamic Worker load makes its isolate off the main thread', { skip: noAsync }, async () => {
  const [isolates, sync] = [isolatesMade(), isolatesMadeSync()];
  for (let i = 0; i < LOADS; i++) await load(100 + i);
  assert.equal(isolatesMade() - isolates, LOADS, 'isolates made');
  assert.equal(isolatesMadeSync() - sync, 0, 'isolates made by new Isolate, on the main thread');
});

test('a load looks at a few isolates, not at every loaded Worker the parent holds', async () => {
  const looksPerLoad = async (from: number) => {
    const before = disposedLooksDone();
    for (let i = from; i < from + LOADS; i++) await load(i);
    return (disposedLooksDone() - before) / LOADS;
  };
  const first = await looksPerLoad(1000);
  const HELD = 5 * LOADS;
  for (let i = 2000; i < 2000 + HELD; i++) await load(i);
  // HELD more Workers held now (never idle long enough to go): a per-load sweep would look at each of them on every load.
  const later = await looksPerLoad(3000);
  assert.ok(later - first < HELD / 5, `${first} isolates looked at per load, then ${later} with ${HELD} more Workers held`);
});

/**
 * Functions of the runtime's own scripts (the init half and the lazy units; the snapshot's libraries; not
 * the worker's code) V8 compiles lazily in each loaded Worker's isolate, counted from V8's function events
 * (`--log-function-events`, one log per isolate) in a process of their own: compiled from a code cache
 * that carries them, or in the snapshot by its warm-up, they are not compiled again.
 */
test('a Dynamic Worker load does not compile the runtime functions its first RPC call runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-lazy-compiles-'));
  try {
    const root = new URL('..', import.meta.url).href;
    const child = `
      const { WorkerRuntime } = await import(${JSON.stringify(`${root}services/sandbox/runtime/index.ts`)});
      const { GET, text, worker } = await import(${JSON.stringify(`${root}services/sandbox/runtime/testing/fixtures.ts`)});
      const rt = new WorkerRuntime({ spares: 1, dynamic: { perWorker: 100, idleMs: 60_000, loadsPerSecond: 1000 } });
      const parent = worker(${JSON.stringify(parent.modules[0]!.content)}, { bindings: [{ type: 'loader', name: 'LOADER' }] });
      for (let n = 0; n < ${LOADS}; n++) {
        const res = await rt.handle(parent, { ...GET, url: 'http://example.test/?n=' + n }, { log: () => {} });
        const body = res.stream ? await new Response(res.stream).text() : text(res.body);
        if (body !== 'dynamic ' + n) throw new Error('load ' + n + ' answered ' + res.status + ' ' + body);
      }
      rt.dispose();`;
    const run = spawnSync(process.execPath, ['--log-function-events', '--logfile=v8.log', '--logfile-per-isolate', '--input-type=module', '-e', child], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const perLoad: number[] = [];
    const libsPerLoad: number[] = [];
    for (const file of readdirSync(dir)) {
      const lines = readFileSync(join(dir, file), 'utf8').split('\n');
      // script-details,<id>,<name>,…; function,interpreter,<script id>,…: a function compiled to bytecode on its first call.
      const names = new Map<string, Set<string>>();
      for (const l of lines) {
        const [kind, id, name] = l.split(',');
        if (kind === 'script-details' && id && name) names.set(id, (names.get(id) ?? new Set()).add(name));
      }
      if (![...names.values()].some((n) => n.has('worker:///w.js'))) continue;
      const compiled = (script: (name: string) => boolean) =>
        lines.filter((l) => l.startsWith('function,interpreter,') && [...(names.get(l.split(',')[2]!) ?? [])].some(script)).length;
      perLoad.push(compiled((n) => n.startsWith('cordon:') && n !== 'cordon:libs'));
      libsPerLoad.push(compiled((n) => n === 'cordon:libs'));
    }
    assert.equal(perLoad.length, LOADS, 'one isolate per load');
    // Left: what runs once per isolate and cannot be rehearsed in a spare (loaded, serviceWorkerHandler): 2. Before the
    // rehearsal went through runBatch and a loaded Worker's entrypoint fetch, 9 (runBatch, ready, sendAnswers, …).
    // Compiled from the caches made by compiling alone, a load compiled ~230 of them.
    for (const n of perLoad) assert.ok(n <= 4, `${perLoad.join(', ')} runtime functions compiled lazily per load`);
    // Left: the init half's setters of host functions (setIdnaHost, setUnitHost, setLegacyTablesSource), which the
    // warm-up must not call: 3. Before the warm-up ran an answer's Body and Headers statics and RpcTarget, 9; without it, 229.
    for (const n of libsPerLoad) assert.ok(n <= 8, `${libsPerLoad.join(', ')} snapshot library functions compiled lazily per load`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Regular expressions the runtime runs for a loaded Worker, counted by the Worker itself (its own
 * RegExp.prototype.exec, which every RegExp method calls once it is replaced): V8 compiles each in
 * each new isolate on its first use. The header, status text and base64 checks and the RPC error
 * rewording and whatwg-url's checks of a URL's host compare code units instead.
 */
test("a loaded Worker's calls run few regular expressions of the runtime", async () => {
  const counting = worker(
    `export default { async fetch(req, env) {
      const w = env.LOADER.load({ compatibilityDate: '2026-07-01', mainModule: 'w.js', globalOutbound: null, modules: { 'w.js': \`
        let runs = 0;
        const exec = RegExp.prototype.exec;
        RegExp.prototype.exec = function (s) { runs++; return exec.call(this, s); };
        export default { fetch() { return new Response(String(runs), { statusText: 'Fine', headers: { 'x-answer': 'yes' } }); } }\` } });
      const e = w.getEntrypoint();
      await (await e.fetch('http://dynamic/', { headers: { 'x-asked': 'yes' } })).text();
      return e.fetch('http://dynamic/');
    } }`,
    { bindings: [{ type: 'loader', name: 'LOADER' }] },
  );
  const res = await rt.handle(counting, GET, { log: () => {} });
  const runs = Number(res.stream ? await new Response(res.stream).text() : text(res.body));
  // Before: 22 (the headers' name and value checks, the status text's, the RPC error rewording's, base64's, whatwg-url's).
  assert.equal(runs, 0, `${runs} regular expressions run by the runtime in a loaded Worker`);
});
