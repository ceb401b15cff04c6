/**
 * An answer's body leaves the isolate moved, not copied (bootstrap entry.ts ready): the buffer the
 * Response made of its init is the runtime's alone once returned, so isolated-vm takes it over rather
 * than copying it and leaving the original to the isolate's garbage collector. Counted in the isolate's
 * memory (ArrayBuffers included) once the host has freed each answer as fast-port does, not timed:
 * copied, each answer's bytes would stay in the isolate until its next collection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerInstance } from './instance.ts';
import { GET, worker } from './testing/fixtures.ts';
import { freeSole } from './sole-bytes.ts';

const MiB = 1024 * 1024;
const fail = (m: string) => {
  throw new Error(m);
};

test("an answer's body over 4 KiB leaves the isolate moved: nothing of it stays in the isolate", async () => {
  // The Response copies the worker's bytes (the Fetch standard's copy): that copy is what leaves.
  const w = await WorkerInstance.create(
    worker(`const bytes = new Uint8Array(${MiB}).fill(97); export default { fetch() { return new Response(bytes) } }`),
    fail,
  );
  try {
    const answer = async () => {
      const body = (await w.handle(GET, { log() {} })).body!;
      assert.equal(body.byteLength, MiB);
      assert.equal(body[MiB - 1], 97);
      freeSole(body);
    };
    await answer();
    const before = await w.heapBytes();
    for (let i = 0; i < 16; i++) await answer();
    const grown = (await w.heapBytes()) - before;
    assert.ok(grown < 4 * MiB, `the isolate holds ${(grown / MiB).toFixed(1)} MiB more after 16 answers of 1 MiB`);
  } finally {
    w.dispose();
  }
});

test('a response is used once returned, as in workerd: reading or cloning it later throws', async () => {
  const w = await WorkerInstance.create(
    worker(`let kept;
      export default { async fetch(req) {
        if (new URL(req.url).pathname === '/later') {
          const out = [String(kept.bodyUsed)];
          try { await kept.text(); out.push('read'); } catch (e) { out.push(e.constructor.name + ': ' + e.message); }
          try { kept.clone(); out.push('cloned'); } catch (e) { out.push(e.constructor.name); }
          return new Response(out.join('\\n'));
        }
        kept = new Response('x'.repeat(8192));
        return kept;
      } }`),
    fail,
  );
  try {
    assert.equal((await w.handle(GET, { log() {} })).body!.byteLength, 8192);
    const later = await w.handle({ ...GET, url: 'http://example.test/later' }, { log() {} });
    assert.deepEqual(new TextDecoder().decode(later.body!).split('\n'), ['true', 'TypeError: Body has already been used', 'TypeError']);
  } finally {
    w.dispose();
  }
});

test('a worker that keeps what it gave its Response cannot reach the bytes that left: the client gets them as returned, a neighbour its own', async () => {
  // The worker rewrites its own buffer right after making the Response and again after returning it, and
  // tries to read the returned body back: the answer that left is the Response's copy, moved, and whole.
  const attacker = await WorkerInstance.create(
    worker(`let kept;
      export default { fetch(req, env, ctx) {
        const mine = new Uint8Array(${64 * 1024}).fill(1);
        kept = new Response(mine);
        mine.fill(2);
        ctx.waitUntil(Promise.resolve().then(async () => { mine.fill(3); try { new Uint8Array(await kept.arrayBuffer()).fill(4); } catch {} }));
        return kept;
      } }`),
    fail,
  );
  const neighbour = await WorkerInstance.create(worker(`export default { fetch() { return new Response(new Uint8Array(${64 * 1024}).fill(9)) } }`), fail);
  try {
    for (let i = 0; i < 4; i++) {
      const [a, b] = await Promise.all([attacker.handle(GET, { log() {} }), neighbour.handle(GET, { log() {} })]);
      assert.equal(a.body!.byteLength, 64 * 1024);
      assert.ok(
        a.body!.every((x) => x === 1),
        'the bytes the Response was made of',
      );
      assert.ok(
        b.body!.every((x) => x === 9),
        "the neighbour's own",
      );
      freeSole(a.body!);
      freeSole(b.body!);
    }
  } finally {
    attacker.dispose();
    neighbour.dispose();
  }
});
