/**
 * Issue 17, "Must show": a request's path must not regain a per-request cost the fast path removed.
 * Ingress's call (callSandbox) and the sandbox's port (SandboxPort + serveFastPath) run here over a real
 * Unix socket with a real WorkerRuntime, and the messages are counted, not timed: a plain request is
 * one binary frame each way and no capnweb message at all, and it costs no supervisor round trip
 * (the bundle and capabilities are fetched once per code key, then cached). A request body goes into the
 * isolate moved, not copied by isolated-vm (isolated-vm's copies are counted). Inside the isolate, a
 * request's URL is parsed once: the worker's `new URL(request.url)` is answered from the isolate's parse
 * cache (whatwg-url's parser runs are counted). The answers of requests the isolate finishes together go
 * back to the host in one callback, not one each (the callbacks are counted). A request's metadata is
 * JSON-encoded once on its way into the isolate (encodings of encoded metadata are counted), and an
 * answer's body leaves it as one copy handed over, not as a callback argument serialised and copied again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { createHook } from 'node:async_hooks';
import { Session } from 'node:inspector/promises';
import { context } from '@opentelemetry/api';
import { externalCopies, externalMoves, postedCallbacks, serialisedBuffers, urlParses } from './helpers/isolate-copies.ts';
import type { UnixListener } from '../lib/rpc/unix.ts';
import type { Channel } from '../lib/rpc/channel.ts';
import type { SupervisorLink } from '../services/sandbox/port.ts';
import type { SandboxApi, SupervisorForSandbox } from '../schemas/services.ts';
import type { WorkerBundle } from '../schemas/worker.ts';
import type { WireRequest, WireResponse } from '../schemas/http.ts';

// After isolate-copies.ts: the runtime's isolated-vm is the counted one.
const { connectUnix, listenUnix } = await import('../lib/rpc/unix.ts');
const { MeshSession } = await import('../lib/rpc/index.ts');
const { createLogger } = await import('../lib/log.ts');
const { WorkerRuntime } = await import('../services/sandbox/runtime/index.ts');
const { BundleCache, SandboxPort } = await import('../services/sandbox/port.ts');
const { FlightRecorder } = await import('../services/sandbox/flight-recorder.ts');
const { CreationReports } = await import('../services/sandbox/creation-reports.ts');
const { serveFastPath } = await import('../services/sandbox/fast-port.ts');
const { callSandbox } = await import('../services/ingress/fast-link.ts');
const { FramePool } = await import('../lib/rpc/frames.ts');

const REQUESTS = 50;
const target = { workerId: 't/hello', version: 'a'.repeat(64), codeKey: 'k'.repeat(43) };
const bundle: WorkerBundle = {
  workerId: target.workerId,
  version: target.version,
  mainModule: 'w.js',
  modules: [
    {
      name: 'w.js',
      type: 'esm',
      // Body-sized ArrayBuffer slices made in the isolate (the runtime's Body copies with them), running total in x-slices.
      content: `let slices = 0;
      const slice = ArrayBuffer.prototype.slice;
      ArrayBuffer.prototype.slice = function (...a) { const copy = slice.apply(this, a); if (copy.byteLength >= 32 * 1024) slices++; return copy; };
      export default { async fetch(r) {
        if (r.url.endsWith('/stream')) {
          let n = 0;
          return new Response(new ReadableStream({ pull(c) { if (n++ < 16) c.enqueue(new Uint8Array(64 * 1024).fill(n)); else c.close(); } }));
        }
        new URL(r.url);
        const res = new Response(r.method === 'POST' ? await r.arrayBuffer() : 'hello');
        res.headers.set('x-slices', String(slices));
        return res;
      } }`,
    },
  ],
  limits: { cpuMs: 1000, wallMs: 15_000, memoryMb: 128 },
  vars: {},
  bindings: [],
} as unknown as WorkerBundle;

/** Every message a channel sends, by kind. */
interface Sent {
  text: number;
  binary: number;
}
function counted(channel: Channel): Sent {
  const sent: Sent = { text: 0, binary: 0 };
  const c = channel as Channel & { sendBinary(m: Uint8Array, written?: () => void): void };
  const text = c.send.bind(c);
  const binary = c.sendBinary.bind(c);
  c.send = (m) => (sent.text++, text(m));
  c.sendBinary = (m, written) => (sent.binary++, binary(m, written));
  return sent;
}

/**
 * Socket writes (each a write or writev system call) by the connecting end (ingress's) and the
 * accepting end (the sandbox's: a socket a server accepted has `server`).
 */
const writes = { ingress: 0, sandbox: 0 };
const proto = Socket.prototype as unknown as { _writeGeneric(this: Socket & { server?: unknown }, ...args: unknown[]): unknown };
const writeGeneric = proto._writeGeneric;
proto._writeGeneric = function (...args) {
  if (this.server) writes.sandbox++;
  else writes.ingress++;
  return writeGeneric.apply(this, args);
};

/**
 * Body-sized buffers made on the path (both ends run here): Buffer.allocUnsafeSlow (frames' own memory)
 * and ArrayBuffer slices (a body cut out of a larger buffer), each of at least BODY_SIZED bytes.
 */
const BODY_SIZED = 32 * 1024;
let bodyAllocations = 0;
const allocUnsafeSlow = Buffer.allocUnsafeSlow;
Buffer.allocUnsafeSlow = (size: number) => {
  if (size >= BODY_SIZED) bodyAllocations++;
  return allocUnsafeSlow(size);
};
const slice = ArrayBuffer.prototype.slice;
ArrayBuffer.prototype.slice = function (this: ArrayBuffer, begin?: number, end?: number) {
  const copy = slice.call(this, begin, end);
  if (copy.byteLength >= BODY_SIZED) bodyAllocations++;
  return copy;
};

/**
 * JSON encodings of text holding a request's metadata already encoded (`\"url\":` inside a string):
 * the metadata encoded a second time, inside a batch's encoding.
 */
let reencoded = 0;
const stringify = JSON.stringify;
JSON.stringify = function (this: unknown, ...args: Parameters<typeof JSON.stringify>) {
  const text = stringify.apply(this, args);
  if (typeof text === 'string' && text.includes('\\"url\\":')) reencoded++;
  return text;
} as typeof JSON.stringify;

/**
 * Bytes copied from buffer to buffer on the host (Buffer#copy: the frame decoder's assembly of a frame out
 * of socket reads, and a frame reader's copy out of a frame it may not keep), both ends together.
 */
let bytesCopied = 0;
const bufferCopy = Buffer.prototype.copy;
Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>) {
  const n = bufferCopy.apply(this, args);
  bytesCopied += n;
  return n;
};

/** Body-sized buffers freed at once (transfer(0): the sandbox frees its answer bodies and chunks once written). */
let bodiesFreed = 0;
const transfer = ArrayBuffer.prototype.transfer;
ArrayBuffer.prototype.transfer = function (this: ArrayBuffer, length?: number) {
  if (length === 0 && this.byteLength >= BODY_SIZED) bodiesFreed++;
  return transfer.call(this, length);
};
/** The sandbox frees a body once the socket has taken it: a moment after its answer arrived (bounded). */
async function freedSince(before: number, expected: number): Promise<number> {
  for (let i = 0; i < 100 && bodiesFreed - before < expected; i++) await new Promise((r) => setTimeout(r, 10));
  return bodiesFreed - before;
}

let dir: string;
let listener: UnixListener;
let runtime: InstanceType<typeof WorkerRuntime>;
let ingress: InstanceType<typeof MeshSession<SandboxApi>>;
let sandboxSent: Sent;
let ingressSent: Sent;
let supervisorCalls = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cordon-path-'));
  const log = createLogger('test', {}, () => {});
  // The supervisor as the sandbox sees it: every method call is counted.
  const remote = new Proxy({} as SupervisorForSandbox, {
    get: (_t, method) => async () => {
      supervisorCalls++;
      return method === 'loadWorker' ? bundle : {};
    },
  });
  const link: SupervisorLink = { ready: async () => ({ remote }) as never };
  runtime = new WorkerRuntime({ spares: 0 });
  const recorder = new FlightRecorder(join(dir, 'recorder'));
  const deps = { runtime, bundles: new BundleCache(link), supervisor: link, log, recorder, creations: new CreationReports(link, log) };
  let accept!: (channel: Channel) => void;
  const accepted = new Promise<Channel>((resolve) => (accept = resolve));
  listener = await listenUnix(join(dir, 's.sock'), 16 * 1024 * 1024, accept);
  const client = await connectUnix(join(dir, 's.sock'), 16 * 1024 * 1024);
  const server = await accepted;
  // The handshake is not under test here (lib/rpc's tests): both ends are as after it.
  client.authenticated();
  server.authenticated();
  sandboxSent = counted(server);
  ingressSent = counted(client);
  const sandbox = new MeshSession(server, { role: 'ingress', name: 'ingress' }, new SandboxPort(deps));
  serveFastPath(sandbox, new SandboxPort(deps), log);
  ingress = new MeshSession<SandboxApi>(client, { role: 'sandbox', name: 'standard' }, undefined);
});

after(async () => {
  ingress?.close();
  await listener?.close();
  runtime?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

/** A request as ingress makes it: a body it read whole is the pieces it arrived in (`bodyParts`). */
const request = (method: string, body: Uint8Array[] | null, url = 'http://example.test/hello'): WireRequest => ({
  method,
  url,
  headers: [['host', 'example.test']],
  body: null,
  ...(body ? { bodyParts: body } : {}),
  cf: { httpProtocol: 'HTTP/1.1' },
});

async function perRequest(method: string, body: Uint8Array[] | null) {
  const bodyLength = body?.reduce((n, p) => n + p.byteLength, 0) ?? 0;
  // The first request of a code key fetches its bundle and capabilities: not a per-request cost.
  const first = await callSandbox(ingress, target, request(method, body));
  assert.equal(first.status, 200, new TextDecoder().decode(first.body ?? new Uint8Array()));
  if (first.body) FramePool.giveBack(first.body);
  const before = {
    ingress: { ...ingressSent },
    sandbox: { ...sandboxSent },
    supervisor: supervisorCalls,
    copies: externalCopies(),
    serialised: serialisedBuffers(),
    reencoded,
    allocations: bodyAllocations,
    copied: bytesCopied,
    writes: { ...writes },
    freed: bodiesFreed,
  };
  // One at a time: a frame of each arrives in reads of its own, as under load (where a 64 KiB body spans reads).
  const answers: WireResponse[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const answer = await callSandbox(ingress, target, request(method, body));
    answers.push({ ...answer, body: answer.body && new Uint8Array(answer.body) });
    // As ingress does once the client's socket has taken it (forward.ts): a pooled frame's buffer goes back.
    if (answer.body) FramePool.giveBack(answer.body);
  }
  for (const a of answers) assert.equal(a.status, 200);
  return {
    ingressText: (ingressSent.text - before.ingress.text) / REQUESTS,
    ingressBinary: (ingressSent.binary - before.ingress.binary) / REQUESTS,
    sandboxText: (sandboxSent.text - before.sandbox.text) / REQUESTS,
    sandboxBinary: (sandboxSent.binary - before.sandbox.binary) / REQUESTS,
    /** Socket writes (system calls) each way: a request's messages leave together. */
    ingressWrites: (writes.ingress - before.writes.ingress) / REQUESTS,
    sandboxWrites: (writes.sandbox - before.writes.sandbox) / REQUESTS,
    supervisor: (supervisorCalls - before.supervisor) / REQUESTS,
    /** Values isolated-vm copied (a request body goes into the isolate moved). */
    copies: (externalCopies() - before.copies) / REQUESTS,
    /** Body-sized answer bodies serialised out of the isolate as a callback's argument (copied twice). */
    serialised: (serialisedBuffers() - before.serialised) / REQUESTS,
    /** Requests' metadata JSON-encoded a second time (inside the batch's encoding). */
    reencoded: (reencoded - before.reencoded) / REQUESTS,
    /** Body-sized buffers made (BODY_SIZED). */
    allocations: (bodyAllocations - before.allocations) / REQUESTS,
    /** Whole bodies' worth of bytes copied on the host, or without a body BODY_SIZED's (a request's and its answer's heads are a few hundred bytes). */
    copied: Math.floor((bytesCopied - before.copied) / REQUESTS / Math.max(BODY_SIZED, bodyLength)),
    /** Body-sized buffers the sandbox freed at once once written. */
    freed: (await freedSince(before.freed, method === 'POST' ? 2 * REQUESTS : 0)) / REQUESTS,
    answers,
  };
}

test('a plain GET is one frame each way, no capnweb message and no supervisor round trip', async () => {
  const cost = await perRequest('GET', null);
  assert.equal(new TextDecoder().decode(cost.answers[0]!.body!), 'hello');
  assert.deepEqual(
    { ...cost, answers: undefined },
    {
      ingressText: 0,
      ingressBinary: 1,
      sandboxText: 0,
      sandboxBinary: 1,
      ingressWrites: 1,
      sandboxWrites: 1,
      supervisor: 0,
      copies: 0,
      serialised: 0,
      reencoded: 0,
      allocations: 0,
      copied: 0,
      freed: 0,
      answers: undefined,
    },
  );
});

test("a 64 KiB body each way is one write each way, moves into the isolate without a copy by isolated-vm, is copied there once (the Response's copy, which leaves it moved: answer-move.test.ts), and is copied once on each side", async () => {
  // In the pieces it arrived in: sent as they are, never joined in ingress.
  const pieces = [new Uint8Array(20_000).fill(7), new Uint8Array(64 * 1024 - 20_000).fill(8)];
  const cost = await perRequest('POST', pieces);
  assert.deepEqual(cost.answers[0]!.body, new Uint8Array(Buffer.concat(pieces)));
  // The request body follows its frame as a message of its own (ingressBinary: 2, in the same write): the
  // sandbox's decoder reads it into a buffer of exactly its bytes, which goes into the isolate as it is.
  // Body-sized buffers per request: that one. Not: a joined request body in ingress, a slice in the
  // sandbox, a buffer per response in ingress (its frame is read into a pooled buffer, given back once written).
  // Bodies copied on the host: the request's out of the sandbox's reads and the answer's out of
  // ingress's (copied: 2). Not: the request's assembled with its head in the decoder's lent buffer, then
  // copied out of it (3).
  // The sandbox frees its answer's body as soon as the socket has taken it, and the 64 KiB read the
  // request frame arrived in once the decoder has copied it out (freed: 2), not at a major GC.
  assert.deepEqual(
    { ...cost, answers: undefined },
    {
      ingressText: 0,
      ingressBinary: 2,
      sandboxText: 0,
      sandboxBinary: 1,
      ingressWrites: 1,
      sandboxWrites: 1,
      supervisor: 0,
      copies: 0,
      serialised: 0,
      reencoded: 0,
      allocations: 1,
      copied: 2,
      freed: 2,
      answers: undefined,
    },
  ); // In the isolate, per echo: one copy, the Response's of the worker's bytes (the Fetch standard's; the
  // worker may change its buffer after). Not: a copy of the body the host moved in when the Request is
  // made, nor of the request's own bytes in arrayBuffer() (both nobody else's).
  const slices = cost.answers.map((a) => Number(new Map(a.headers).get('x-slices')));
  for (let i = 1; i < slices.length; i++) assert.equal(slices[i]! - slices[i - 1]!, 1, `body-sized slices in the isolate for request ${i}`);
});

test('a streamed body whose chunks the worker makes at once leaves the isolate gathered and copied once: a chunk frame per 256 KiB, not per chunk', async () => {
  await callSandbox(ingress, target, request('GET', null)); // the code key's first request: loads it
  const before = sandboxSent.binary;
  const moved = externalMoves();
  const copied = externalCopies();
  const r = await callSandbox(ingress, target, request('GET', null, 'http://example.test/stream'));
  const got: Uint8Array[] = [];
  for await (const chunk of r.stream!) got.push(chunk);
  const body = Buffer.concat(got);
  assert.equal(body.length, 16 * 64 * 1024);
  for (let i = 0; i < 16; i++) assert.equal(body[i * 64 * 1024], i + 1, `chunk ${i} in its place`);
  // The head, 4 chunk frames of 256 KiB (16 of 64 KiB were the worker's), the end.
  assert.equal(sandboxSent.binary - before, 6);
  // Each of the 5 pulls (4 chunks, then the end) brings its bytes in a buffer the host moved in, copied
  // into it once in the isolate and moved back out. Not: gathered into a buffer of the isolate's, then
  // copied out of it by isolated-vm (0 moves).
  assert.deepEqual({ moves: externalMoves() - moved, copies: externalCopies() - copied }, { moves: 5, copies: 0 });
});

test("a streamed body's chunk frames are read into ingress's pooled buffers: once given back, a stream allocates none", async () => {
  const stream = async () => {
    const r = await callSandbox(ingress, target, request('GET', null, 'http://example.test/stream'));
    const held: Uint8Array[] = [];
    for await (const chunk of r.stream!) held.push(chunk);
    // Every chunk still its own while held: worker chunk n (64 KiB of n) in its place.
    held.forEach((c, j) => [0, 1, 2, 3].forEach((k) => assert.equal(c[k * 64 * 1024 + 5], 4 * j + k + 1)));
    // As forward.ts does once the client's socket has taken them (here after the last, so that the first
    // stream leaves the pool every buffer one stream can have out at once: 4 chunk frames of 256 KiB).
    for (const chunk of held) FramePool.giveBack(chunk);
    return held.reduce((n, c) => n + c.byteLength, 0);
  };
  await stream();
  const before = bodyAllocations;
  const freedBefore = bodiesFreed;
  assert.equal(await stream(), 16 * 64 * 1024);
  // Not one buffer of 256 KiB per chunk frame (4 here; 40 for a 10 MiB stream).
  assert.equal(bodyAllocations - before, 0);
  // The sandbox's buffers for the 4 chunks it pulled from the isolate: each, once written, goes back to the
  // stream for a later pull or is freed, and those left when the stream ends are freed then, not at a major
  // GC: as many as the stream used at once (1 to 4, as the socket's writes and the pulls interleave).
  await freedSince(freedBefore, 4);
  const freed = bodiesFreed - freedBefore;
  assert.ok(freed >= 1 && freed <= 4, `${freed} buffers freed for 4 chunks`);
});

test("a request's URL is parsed once in the isolate: the worker's new URL(request.url) is the cache's, and a URL seen before is not parsed again", async () => {
  const parsedEach = async (url: (i: number) => string) => {
    const before = urlParses();
    const answers = await Promise.all(Array.from({ length: REQUESTS }, (_, i) => callSandbox(ingress, target, request('GET', null, url(i)))));
    for (const a of answers) assert.equal(a.status, 200);
    return (urlParses() - before) / REQUESTS;
  };
  // Each URL new to the isolate: the Request's parse; the worker's parse of the same string is a cache hit.
  assert.equal(await parsedEach((i) => `http://example.test/hello?n=${i}`), 1);
  // The same URL again and again: no parse at all.
  assert.equal(await parsedEach(() => 'http://example.test/hello'), 0);
});

test('the answers of a batch the isolate finishes together go to the host in one callback', async () => {
  // Requests that arrive in one turn of the event loop go into the isolate in one call (WorkerRuntime's batch).
  const wire = request('GET', null);
  const one = { method: wire.method, url: wire.url, headers: wire.headers, body: null };
  await runtime.handle(bundle, one, { log: () => {} });
  const before = postedCallbacks();
  const answers = await Promise.all(Array.from({ length: 16 }, () => runtime.handle(bundle, one, { log: () => {} })));
  for (const a of answers) assert.equal(a.status, 200);
  assert.equal(postedCallbacks() - before, 1);
});

test('requests that arrive in one turn of the event loop, each in a callback of its own, leave ingress in one socket write', async () => {
  await callSandbox(ingress, target, request('GET', null));
  const before = { ...writes };
  // Immediates queued together run in one turn, each followed by its own ticks: as requests read from
  // many client connections at once are. (Not timers: on a busy machine ten of them can fall due in two turns.)
  const answers = await Promise.all(
    Array.from(
      { length: 10 },
      () => new Promise<WireResponse>((resolve, reject) => setImmediate(() => callSandbox(ingress, target, request('GET', null)).then(resolve, reject))),
    ),
  );
  for (const a of answers) assert.equal(a.status, 200);
  assert.equal(writes.ingress - before.ingress, 1);
  // The answers come back from the isolate in a call or two (as its batches end), not in one write each.
  assert.ok(writes.sandbox - before.sandbox <= 2, `${writes.sandbox - before.sandbox} writes for 10 answers`);
});

test("without an exporter, a request switches context once (into the caller's trace, in the sandbox), and starts no span", async () => {
  await callSandbox(ingress, target, request('GET', null));
  let switches = 0;
  const original = context.with;
  context.with = function (this: typeof context, ...args: Parameters<typeof original>) {
    switches++;
    return original.apply(this, args);
  } as typeof original;
  try {
    const answers = await Promise.all(Array.from({ length: REQUESTS }, () => callSandbox(ingress, target, request('GET', null))));
    for (const a of answers) assert.equal(a.status, 200);
  } finally {
    context.with = original;
  }
  assert.equal(switches / REQUESTS, 1);
});

test('a plain GET makes no promise the path does not need: a live isolate is found, and a worker without assets passes, without one', async () => {
  await callSandbox(ingress, target, request('GET', null));
  let promises = 0;
  const hook = createHook({ init: (_id, type) => void (type === 'PROMISE' && promises++) });
  hook.enable();
  try {
    for (let i = 0; i < REQUESTS; i++) assert.equal((await callSandbox(ingress, target, request('GET', null))).status, 200);
  } finally {
    hook.disable();
  }
  // Ingress's call and the sandbox's whole host side, with this loop's own await, counted (each is an
  // object to collect): 27 before a live isolate was found without awaiting its promise, a worker
  // without assets passed without awaiting undefined, and the heap measure's check ran synchronously;
  // 22 since. The bound between leaves room for the runtime's timed work (its heap measure once a
  // second) on a slow machine.
  assert.ok(promises / REQUESTS < 25, `${promises / REQUESTS} promises per request`);
});

test('a plain GET allocates no more than it needs on the host, ingress and sandbox together', async () => {
  // Headers as ingress forwards a browser's: each is checked on the way in and out.
  const browserLike = (): WireRequest => ({
    ...request('GET', null),
    headers: [
      ['host', 'example.test'],
      ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0'],
      ['accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
      ['accept-language', 'en-GB,en;q=0.5'],
      ['accept-encoding', 'gzip, deflate, br, zstd'],
      ['x-request-id', '0b9d3c52-5a4e-4f0e-9a51-1f2d3c4b5a69'],
      ['cf-connecting-ip', '127.0.0.1'],
      ['x-forwarded-for', '127.0.0.1'],
      ['x-forwarded-proto', 'http'],
    ],
  });
  await callSandbox(ingress, target, browserLike());
  // V8's sampling heap profiler, keeping the samples of objects already collected: bytes allocated,
  // not bytes live, on this process's heap (the isolate's is its own). One sample every 64 bytes on
  // average: over these requests, about a percent of noise.
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 64, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
  let bytes = 0;
  try {
    for (let i = 0; i < 4 * REQUESTS; i++) assert.equal((await callSandbox(ingress, target, browserLike())).status, 200);
  } finally {
    const { profile } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    type Node = { selfSize: number; children: Node[] };
    const sum = (n: Node): number => n.selfSize + n.children.reduce((t, c) => t + sum(c), 0);
    bytes = sum(profile.head as Node) / (4 * REQUESTS);
  }
  // 74 KB before each hop's check of the headers was one pass over the list as it is (a zod array of
  // tuples copied it, with several objects per header); 60 KB after. Both ends run here, under the test
  // runner's hooks: only the difference counts. The bound between leaves room for the runtime's timed
  // work (watchdogs, the heap measure) on a slow machine.
  assert.ok(bytes <= 67 * 1024, `${Math.round(bytes)} bytes allocated per request`);
});
