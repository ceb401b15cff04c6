/**
 * Bytes cross the host↔isolate boundary as ArrayBuffers beside the text of a capability call, never as
 * base64 inside it: checked on the messages themselves (the isolate's through capCaller; the host's
 * reply by the isolate, which refuses bytes in the text), not timed. Fails if base64 comes back.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerRuntime, type CapabilityHost } from './index.ts';
import { capCaller } from './bootstrap/bindings.ts';
import type { WireMessage } from './bootstrap/wire-codec.ts';
import { GET, text, worker } from './testing/fixtures.ts';

const MiB = 1024 * 1024;

test("the isolate's capability call sends bytes beside its text", () => {
  const sent: WireMessage[] = [];
  const call = capCaller((_h, _m, args) => {
    sent.push(args);
    return { text: '{"ok":{"$b":0}}', bytes: [new Uint8Array([1, 2]).buffer] };
  });
  const value = new Uint8Array(MiB).fill(7);
  const back = call('KV', 'put', ['k', value.subarray(1), { metadata: '{}' }]);
  assert.deepEqual([...(back as Uint8Array)], [1, 2]);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.text, '["k",{"$b":0},{"metadata":"{}"}]');
  assert.equal(sent[0]!.bytes.length, 1);
  assert.ok(sent[0]!.bytes[0] instanceof ArrayBuffer);
  assert.equal(sent[0]!.bytes[0]!.byteLength, MiB - 1);
});

test("the isolate takes bytes from the host's reply only beside its text: a reply with base64 bytes is refused", () => {
  const call = capCaller(() => ({ text: '{"ok":{"$b":"AQI="}}', bytes: [] }));
  assert.throws(() => call('KV', 'get', [['k']]), /malformed bytes/);
});

test('a KV value crosses to the host and back whole (the host replies with its bytes beside the text, or the isolate would refuse them)', async () => {
  const rt = new WorkerRuntime();
  after(() => rt.dispose());
  const values = new Map<string, Uint8Array>();
  const capabilities: CapabilityHost = {
    async call(_handle, method, args) {
      if (method === 'put') return void values.set(String(args[0]), args[1] as Uint8Array);
      if (method === 'get') return (args[0] as string[]).map((k) => [values.get(k) ?? null, null, null]);
      throw new Error(`no ${method}`);
    },
  };
  const bundle = worker(
    `export default { async fetch(req, env) {
       const v = new Uint8Array(${MiB}); for (let i = 0; i < v.length; i++) v[i] = i * 31 & 255;
       await env.KV.put('k', v);
       const back = new Uint8Array(await env.KV.get('k', 'arrayBuffer'));
       let same = back.length === v.length; for (let i = 0; same && i < v.length; i++) same = back[i] === v[i];
       return new Response(String(same)) } }`,
    { bindings: [{ type: 'kv', name: 'KV', resource: 'ns' }], limits: { cpuMs: 2000 } },
  );
  const res = await rt.handle(bundle, GET, { log() {}, capabilities });
  assert.equal(text(res.body), 'true');
  assert.equal(values.get('k')?.byteLength, MiB, 'the host received the bytes');
});

test('bytes cross the blocking calls too (sql.exec): in as an argument, out in a row', async () => {
  const rt = new WorkerRuntime();
  after(() => rt.dispose());
  let received: unknown;
  const capabilities: CapabilityHost = {
    async call(_handle, method, args) {
      if (method !== 'exec') throw new Error(`no ${method}`);
      received = (args[1] as unknown[])[0];
      return { columnNames: ['b'], rows: [[new Uint8Array(MiB).fill(9)]], rowsRead: 1, rowsWritten: 0 };
    },
  };
  const bundle = worker(
    `export default { fetch(req, env) {
       const row = env.STORE.sql.exec('select ?', new Uint8Array(${MiB}).fill(3)).one();
       const b = new Uint8Array(row.b);
       return new Response(b.length + ' ' + b[0] + ' ' + b[b.length - 1]) } }`,
    { bindings: [{ type: 'storage', name: 'STORE' }], limits: { cpuMs: 2000 } },
  );
  const res = await rt.handle(bundle, GET, { log() {}, capabilities });
  assert.equal(text(res.body), `${MiB} 9 9`);
  assert.ok(received instanceof Uint8Array && received.byteLength === MiB && received[0] === 3);
});
