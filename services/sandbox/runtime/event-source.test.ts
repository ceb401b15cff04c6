/**
 * EventSource (bootstrap/event-source.ts): the text/event-stream format as the HTML standard parses it
 * (CR, LF and CRLF lines split anywhere, comments, event types, multi-line data, ids, retry, a BOM),
 * checked against workerd's answer to the same worker with `EventSource.from`; and a connection through
 * the worker's own fetch, which the runtime refuses without an egress capability (egress policy applies).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime } from './index.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const rt = new WorkerRuntime();
after(() => rt.dispose());

test('EventSource.from parses a stream as workerd does (ids with NUL ignored, as the standard says)', async () => {
  const res = await rt.handle(
    worker(
      `export default { async fetch() {
        const enc = new TextEncoder();
        const parts = ['\\ufeffdata: one\\r\\n\\r\\n', ': comment\\n', 'event: tick\\ndata: a\\ndata: b\\nid: 7\\n\\n', 'data: split', ' across\\r', '\\nretry: 10\\n\\n', 'data\\n\\n', 'id: 8\\0x\\ndata: nul-id\\n\\n', 'event: end\\ndata: last\\n\\n'];
        const stream = new ReadableStream({ start(c) { for (const p of parts) c.enqueue(enc.encode(p)); c.close(); } });
        const es = EventSource.from(stream);
        const seen = [];
        const rec = (e) => seen.push([e.type, e.data, e.lastEventId]);
        es.onmessage = rec;
        es.addEventListener('tick', rec);
        const done = new Promise((r) => { es.addEventListener('end', (e) => { rec(e); r(); }); es.onerror = () => { seen.push(['error', es.readyState]); r(); }; });
        await done;
        await new Promise((r) => setTimeout(r, 10));
        const bad = (() => { try { new EventSource('not a url') } catch (e) { return e.name } })();
        return Response.json({ seen, state: es.readyState, consts: [EventSource.CONNECTING, EventSource.OPEN, EventSource.CLOSED], bad });
      } };`,
    ),
    GET,
    { log: () => {} },
  );
  // workerd's answer, except that it keeps the id "8\\0x" where the standard ignores an id holding NUL.
  assert.deepEqual(JSON.parse(text(res.body)), {
    seen: [
      ['message', 'one', ''],
      ['tick', 'a\nb', '7'],
      ['message', 'split across', '7'],
      ['message', 'nul-id', '7'],
      ['end', 'last', '7'],
      ['error', 2],
    ],
    state: 2,
    consts: [0, 1, 2],
    bad: 'SyntaxError',
  });
});

test('new EventSource(url) connects with the worker fetch: without egress it errors and retries, and close() stops it', async () => {
  const res = await rt.handle(
    worker(
      `export default { async fetch() {
        const es = new EventSource('https://events.example/stream');
        const states = [es.readyState];
        await new Promise((r) => { es.onerror = () => { states.push(es.readyState); es.close(); r(); }; });
        states.push(es.readyState);
        return Response.json({ states, url: es.url });
      } };`,
    ),
    GET,
    { log: () => {} },
  );
  assert.deepEqual(JSON.parse(text(res.body)), { states: [0, 0, 2], url: 'https://events.example/stream' });
});
