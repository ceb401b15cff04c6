/**
 * HTMLRewriter (bootstrap/html-rewriter.ts: lol-html as WebAssembly in the isolate): element, text,
 * comment and document handlers, async handlers, streaming as the body is read, and what hostile uses
 * get — a throwing handler errors the body, bad arguments are TypeErrors, a rewrite that grows without
 * bound stops at the worker's memory limit and the next request is served.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime, type WorkerError } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());
const limits = { cpuMs: 5000, wallMs: 20_000, memoryMb: 128 };

async function body(res: { body: Uint8Array | null; stream?: ReadableStream<Uint8Array> }): Promise<string> {
  return res.body ? text(res.body) : new Response(res.stream ?? null).text();
}

test('elements, text, comments and the document end are rewritten; async handlers are awaited (as workerd answers)', async () => {
  const res = await rt.handle(
    worker(
      `export default { async fetch() {
        const res = new Response('<!doctype html><html><head><title>T</title></head><body><!-- c --><a href="/x">link</a><p class="rm">gone</p><div id="d">text</div></body></html>', { headers: { 'content-type': 'text/html' } });
        const seen = [];
        const out = new HTMLRewriter()
          .on('a[href]', { element(e) { e.setAttribute('href', 'https://ex.test' + e.getAttribute('href')); e.append('!', { html: false }); } })
          .on('p.rm', { element(e) { e.remove(); } })
          .on('div#d', { async element(e) { await new Promise((r) => setTimeout(r, 2)); e.prepend('<b>async</b>', { html: true }); }, text(t) { if (t.text) seen.push(t.text); } })
          .onDocument({ comments(c) { c.remove(); }, end(end) { end.append('<!-- end -->', { html: true }); } })
          .transform(res);
        return new Response(await out.text() + '|' + seen.join(',') + '|' + out.headers.get('content-type'));
      } };`,
      { limits },
    ),
    GET,
    { log: () => {} },
  );
  // workerd's answer to the same worker (measured).
  assert.equal(
    await body(res),
    '<!doctype html><html><head><title>T</title></head><body><a href="https://ex.test/x">link!</a><div id="d"><b>async</b>text</div></body></html><!-- end -->|text|text/html',
  );
});

test('the body is rewritten as it streams: the first part goes out before the source has ended', async () => {
  const res = await rt.handle(
    worker(
      `export default { fetch() {
        const enc = new TextEncoder();
        let i = 0;
        const src = new ReadableStream({ async pull(c) {
          if (i === 3) return c.close();
          if (i > 0) await new Promise((r) => setTimeout(r, 300));
          c.enqueue(enc.encode('<p>part ' + i++ + '</p>'));
        } });
        return new HTMLRewriter().on('p', { element(e) { e.setAttribute('class', 'seen') } }).transform(new Response(src));
      } };`,
      { limits },
    ),
    GET,
    { log: () => {} },
  );
  assert.ok(res.stream, 'a streamed body');
  const reader = res.stream.getReader();
  let got = '';
  while (!got.includes('part 0</p>')) got += text((await reader.read()).value ?? null);
  // The source gives a part only when asked (pull): part 2 cannot have been rewritten yet.
  assert.doesNotMatch(got, /part 2/, 'the first part came out before the source had ended');
  for (let r = await reader.read(); !r.done; r = await reader.read()) got += text(r.value);
  assert.equal(got, '<p class="seen">part 0</p><p class="seen">part 1</p><p class="seen">part 2</p>');
});

test('hostile use: a throwing handler errors the body, bad arguments are TypeErrors, a growing rewrite stops at the memory limit', async () => {
  const probes = worker(
    `export default { async fetch(request) {
      const out = {};
      const t = async (name, f) => { try { out[name] = await f() } catch (e) { out[name] = e.name + ': ' + e.message } };
      await t('throws', () => new HTMLRewriter().on('p', { element() { throw new Error('boom') } }).transform(new Response('<p>x</p>')).text());
      await t('badSelector', () => new HTMLRewriter().on('p[', { element() {} }).transform(new Response('<p>x</p>')).text());
      await t('badHandler', () => new HTMLRewriter().on('p', { element: 1 }));
      await t('notResponse', () => new HTMLRewriter().transform('<p>'));
      await t('nullBody', () => new HTMLRewriter().on('p', {}).transform(new Response(null, { status: 204 })).status);
      return Response.json(out);
    } };`,
    { limits },
  );
  const out = JSON.parse(await body(await rt.handle(probes, GET, { log: () => {} }))) as Record<string, string>;
  assert.equal(out.throws, 'Error: boom');
  assert.match(out.badSelector, /^(TypeError|Error): /);
  assert.match(out.badHandler, /^TypeError: HTMLRewriter.on: element must be a function/);
  assert.match(out.notResponse, /^TypeError: /);
  assert.equal(out.nullBody, 204);
  const bomb = worker(
    `export default { async fetch() {
      const big = '<p>' + 'x'.repeat(1024) + '</p>';
      const src = new Response(big.repeat(4096));
      const out = new HTMLRewriter().on('p', { element(e) { e.append(big.repeat(64), { html: true }) } }).transform(src);
      return new Response(await out.arrayBuffer());
    } };`,
    { limits: { ...limits, memoryMb: 32 } },
  );
  // 256 MiB of output wanted by a 32 MB worker: the rewrite fails inside the worker (its memory, its error).
  await assert.rejects(rt.handle(bomb, GET, { log: () => {} }), (e: WorkerError) => e.status === 500);
  assert.equal((await rt.handle(probes, GET, { log: () => {} })).status, 200, 'the next request is served');
});
