/**
 * node:http servers and cloudflare:node's httpServerHandler as `deploy` bundles them from the 2025-09-01
 * compatibility date, run in a real isolate: requests handed to a server in the worker itself, every answer
 * (status, headers, streamed body, errors) equal to the real workerd's on the same source; before that date
 * the server classes throw ERR_METHOD_NOT_IMPLEMENTED, as workerd's do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCompatWorker } from './testing.ts';
import { answerOnWorkerd, workerdMissing } from '../../test/helpers/workerd.ts';

const SOURCE = `import http from 'node:http';
import { httpServerHandler, handleAsNodeRequest } from 'cloudflare:node';
const t = (f) => { try { return ['ok', f()] } catch (e) { return ['throws', e.code, e.message] } };
const server = http.createServer((req, res) => {
  if (req.url === '/throw') throw new Error('boom');
  if (req.url === '/destroy') return void res.destroy(new Error('gone'));
  if (req.url.startsWith('/echo')) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-multi', ['a', 'b']);
      res.writeHead(201, 'Made', { 'content-type': 'application/json', 'X-Mixed': 'Case' });
      const { readable, encrypted, remoteAddress, localPort } = req.socket;
      res.end(JSON.stringify({ socket: [readable, encrypted, remoteAddress, localPort, req.connection === req.socket, res.socket ?? null, req.complete], method: req.method, url: req.url, host: req.headers.host, x: req.headers['x-test'], raw: req.rawHeaders.length, body: Buffer.concat(chunks).toString(), version: req.httpVersion, proto: req instanceof http.IncomingMessage && res instanceof http.ServerResponse }));
    });
    return;
  }
  if (req.url === '/stream') {
    res.statusCode = 202;
    res.write('one,');
    setTimeout(() => { res.write(new Uint8Array([116, 119, 111, 44])); res.end('three'); }, 5);
    return;
  }
  if (req.url === '/state') {
    const before = res.headersSent;
    res.setHeader('X-Case', 'kept');
    res.appendHeader('x-list', 'a'); res.appendHeader('x-list', 'b');
    const names = [res.getHeaderNames(), res.getRawHeaderNames(), res.getHeaders(), res.hasHeader('x-case')];
    res.removeHeader('x-case');
    res.writeHead(200);
    res.write('x');
    return void res.end(JSON.stringify({ before, names, sent: res.headersSent, late: t(() => res.setHeader('a', 'b')), status: res.statusCode }));
  }
  if (req.url === '/empty') return void res.writeHead(204).end('dropped');
  res.end('hello ' + req.method);
});
const listened = [];
server.on('listening', () => listened.push('event'));
server.listen(8080, () => listened.push('callback'));
const handler = httpServerHandler({ port: 8080 });
const auto = http.createServer((q, r) => r.end('auto ' + q.url));
const autoHandler = httpServerHandler(auto);
// workerd's Response carries Node's hop-by-hop headers (connection, transfer-encoding), which never reach a client.
const HOP = ['connection', 'transfer-encoding', 'content-length'];
const answer = async (p) => {
  try {
    const res = await p;
    return [res.status, res.statusText, [...res.headers].filter(([k]) => !HOP.includes(k)), await res.text()];
  } catch (e) { return ['throws', e.code, e.message]; }
};
export default { async fetch() {
  const u = (p) => 'http://example.com' + p;
  const out = {
    echo: await answer(handler.fetch(new Request(u('/echo?q=1'), { method: 'POST', body: 'hi there', headers: { 'x-test': 'yes' } }))),
    stream: await answer(handler.fetch(new Request(u('/stream')))),
    state: await answer(handler.fetch(new Request(u('/state')))),
    empty: await answer(handler.fetch(new Request(u('/empty')))),
    plain: await answer(handleAsNodeRequest(8080, new Request(u('/'), { method: 'PUT' }))),
    throws: await answer(handler.fetch(new Request(u('/throw')))),
    destroy: await answer(handler.fetch(new Request(u('/destroy')))),
    missing: await answer(httpServerHandler({ port: 9999 }).fetch(new Request(u('/')))),
    auto: [await answer(autoHandler.fetch(new Request(u('/a')))), auto.listening, typeof auto.address().port],
    twice: t(() => http.createServer().listen(8080)),
    badPort: t(() => http.createServer().listen(70000)).slice(0, 2),
    noPort: t(() => httpServerHandler({})),
    address: server.address(),
    listening: server.listening,
    listened,
  };
  server.close();
  out.closed = [server.listening, await answer(handler.fetch(new Request(u('/'))))];
  return Response.json(out);
} };`;

async function onWorkerd(source: string, date: string): Promise<unknown> {
  return JSON.parse(await answerOnWorkerd(source, date));
}

test('node:http servers from 2025-09-01: the same answers as workerd', { skip: workerdMissing() }, async () => {
  const ours = await runCompatWorker(SOURCE, {}, '2025-09-01');
  assert.equal(ours.status, 200, ours.body);
  const mine = JSON.parse(ours.body) as Record<string, unknown>;
  assert.deepEqual(mine.stream, [202, 'unknown', [], 'one,two,three']);
  assert.deepEqual(mine, await onWorkerd(SOURCE, '2025-09-01'));
});

test('node:http servers before 2025-09-01: ERR_METHOD_NOT_IMPLEMENTED, as workerd', { skip: workerdMissing() }, async () => {
  const source = `import http from 'node:http';
export default { fetch() { try { http.createServer(); return new Response('made'); } catch (e) { return Response.json([e.code]); } } };`;
  const ours = await runCompatWorker(source, {}, '2025-08-20');
  assert.deepEqual(JSON.parse(ours.body), ['ERR_METHOD_NOT_IMPLEMENTED']);
  assert.deepEqual(JSON.parse(ours.body), await onWorkerd(source, '2025-08-20'));
});

test("node:https servers are node:http's, their TLS-only methods throwing, as workerd's", { skip: workerdMissing() }, async () => {
  const source = `import https from 'node:https';
import http from 'node:http';
import { httpServerHandler } from 'cloudflare:node';
const t = (f) => { try { return ['ok', f()] } catch (e) { return ['throws', e.code, e.message] } };
const server = https.createServer({ key: 'k', cert: 'c' }, (req, res) => res.end('secure ' + req.url));
server.listen(8443);
export default { async fetch() {
  const res = await httpServerHandler({ port: 8443 }).fetch(new Request('https://example.com/x'));
  return Response.json({
    served: [res.status, await res.text()], kinds: [server instanceof https.Server, server instanceof http.Server, typeof https.Server],
    tls: ['addContext', 'getTicketKeys', 'setSecureContext', 'setTicketKeys'].map((m) => t(() => server[m]())),
    noOptions: t(() => https.createServer((q, r) => r.end()).listening),
  });
} };`;
  const ours = await runCompatWorker(source, {}, '2025-09-01');
  assert.equal(ours.status, 200, ours.body);
  assert.deepEqual(JSON.parse(ours.body).served, [200, 'secure /x']);
  assert.deepEqual(JSON.parse(ours.body), await onWorkerd(source, '2025-09-01'));
  const before = `import https from 'node:https';
export default { fetch() { try { https.createServer(); return new Response('made'); } catch (e) { return Response.json([e.code]); } } };`;
  assert.deepEqual(JSON.parse((await runCompatWorker(before, {}, '2025-08-20')).body), ['ERR_METHOD_NOT_IMPLEMENTED']);
  assert.deepEqual(await onWorkerd(before, '2025-08-20'), ['ERR_METHOD_NOT_IMPLEMENTED']);
});

test('node:http servers by flag: enable_nodejs_http_server_modules before the date, disable_nodejs_http_server_modules after it', async () => {
  const source = `import http from 'node:http';
import { httpServerHandler } from 'cloudflare:node';
export default { async fetch(request) {
  try { http.createServer((q, r) => r.end('served')).listen(1); } catch (e) { return new Response(e.code); }
  return new Response(await (await httpServerHandler({ port: 1 }).fetch(request)).text());
} };`;
  assert.equal((await runCompatWorker(source, {}, '2025-08-20', ['nodejs_compat', 'enable_nodejs_http_server_modules'])).body, 'served');
  assert.equal((await runCompatWorker(source, {}, '2025-09-01', ['nodejs_compat', 'disable_nodejs_http_server_modules'])).body, 'ERR_METHOD_NOT_IMPLEMENTED');
});

test("a CommonJS require() of Cordon's node:* modules gets the module itself, with every named export, as Node's require does", async () => {
  const mods = ['crypto', 'zlib', 'util', 'net', 'tls', 'os', 'fs', 'stream', 'stream/promises', 'http', 'https', 'dns', 'dns/promises'];
  const source = `const Stream = require('stream');
const http = require('node:http');
const { inherits } = require('util');
function Mine() { Stream.call(this); }
inherits(Mine, Stream);
${mods.map((m, i) => `import * as ns${i} from 'node:${m}'; const r${i} = require('node:${m}');`).join('\n')}
const missing = { ${mods.map((m, i) => `'${m}': Object.keys(ns${i}).filter((k) => k !== 'default' && !(k in r${i}))`).join(', ')} };
export default { fetch: () => Response.json([typeof Stream, new Mine() instanceof Stream, typeof http.ServerResponse.prototype.setHeader, missing]) };`;
  const ours = await runCompatWorker(source, {}, '2025-10-01');
  assert.deepEqual(JSON.parse(ours.body), ['function', true, 'function', Object.fromEntries(mods.map((m) => [m, []]))]);
});

test('a response body waits for its reader: a write completes only while less than 64 KiB waits unread', async () => {
  const source = `import http from 'node:http';
import { httpServerHandler } from 'cloudflare:node';
let done = 0;
http.createServer(async (q, res) => {
  for (let i = 0; i < 32; i++) await new Promise((r) => res.write(new Uint8Array(32 * 1024), r)).then(() => done++);
  res.end();
}).listen(2);
export default { async fetch(request) {
  const response = await httpServerHandler({ port: 2 }).fetch(request);
  await new Promise((r) => setTimeout(r, 50));
  const before = done;
  const length = (await response.arrayBuffer()).byteLength;
  return Response.json({ before, after: done, length });
} };`;
  const out = JSON.parse((await runCompatWorker(source, {}, '2025-09-01')).body);
  assert.ok(out.before <= 3, `${out.before} writes of 32 KiB completed with nothing read`);
  assert.deepEqual({ after: out.after, length: out.length }, { after: 32, length: 32 * 32 * 1024 });
});
