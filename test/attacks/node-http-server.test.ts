/**
 * node:http servers in a worker (cloudflare:node's httpServerHandler) through a real mesh: a request body past
 * the ingress limit is refused before the server reads it all, a handler that never ends its response (or
 * streams forever) stops at the worker's wall limit, a handler for a port nobody listens on fails with
 * workerd's clear error; a bystander of another tenant is served throughout, and the worker itself after.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor, type TestMesh } from '../helpers/mesh.ts';
import { startAttackMesh, type AttackMesh } from '../helpers/attack-mesh.ts';

const WORKER = `import http from 'node:http';
import { httpServerHandler } from 'cloudflare:node';
const server = http.createServer((req, res) => {
  if (req.url === '/atk/ok') return void res.end('served');
  if (req.url === '/atk/read') {
    let n = 0;
    req.on('data', (c) => (n += c.length));
    req.on('end', () => res.end('read ' + n));
    return;
  }
  if (req.url === '/atk/never') return; // no end, ever
  if (req.url === '/atk/endless') {
    const tick = () => { res.write('x'.repeat(1024)); setTimeout(tick, 5); };
    return void tick();
  }
  res.statusCode = 404;
  res.end();
});
server.listen(8080);
const served = httpServerHandler({ port: 8080 });
const unserved = httpServerHandler({ port: 9 });
export default { fetch: (request) => (new URL(request.url).pathname === '/atk/unserved' ? unserved : served).fetch(request) };`;

describe('node:http servers: body limits, wall limits and unserved ports', () => {
  let mesh: TestMesh;
  let atk: AttackMesh;
  const bystander = async () => assert.equal((await fetch(`${mesh.httpUrl}/bystander`)).status, 200, 'the bystander is served');
  const itself = async () => {
    const res = await fetch(`${mesh.httpUrl}/atk/ok`);
    assert.equal(await res.text(), 'served', 'the worker itself answers');
  };
  before(async () => {
    atk = await startAttackMesh(
      [
        {
          tenant: 'attacker',
          worker: WORKER,
          probe: '/atk/ok',
          config: {
            name: 'nodeserver',
            compatibility_date: '2025-09-01',
            compatibility_flags: ['nodejs_compat'],
            route: '*/atk/*',
            cordon: { limits: { wall_ms: 3000 } },
          },
        },
      ],
      { CORDON_MAX_REQUEST_MB: '1' },
    );
    mesh = atk.mesh;
  });
  after(() => atk?.stop());

  test('a request body past the ingress limit is refused (413), declared or streamed; a body within it is read whole', async () => {
    const small = await fetch(`${mesh.httpUrl}/atk/read`, { method: 'POST', body: 'y'.repeat(100_000) });
    assert.equal(await small.text(), 'read 100000');
    const declared = await fetch(`${mesh.httpUrl}/atk/read`, { method: 'POST', body: new Uint8Array(2 << 20) }).catch((e: Error) => e);
    if (!(declared instanceof Error)) assert.equal(declared.status, 413, await declared.text());
    let sent = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(c) {
        // Bounded: 4 MiB at most, four times the limit.
        if (sent >= 4 << 20) return c.close();
        sent += 64 * 1024;
        c.enqueue(new Uint8Array(64 * 1024));
      },
    });
    const streamed = await fetch(`${mesh.httpUrl}/atk/read`, { method: 'POST', body: endless, duplex: 'half' } as RequestInit).catch((e: Error) => e);
    if (!(streamed instanceof Error)) {
      const body = await streamed.text();
      assert.equal(streamed.status, 413, body);
      assert.doesNotMatch(body, /^read /, 'the server never saw the whole body');
    }
    await bystander();
    await itself();
  });

  test("a handler that never ends its response, or streams forever, stops at the worker's wall limit", async () => {
    const never = await fetch(`${mesh.httpUrl}/atk/never`);
    const text = await never.text();
    assert.equal(never.status, 503, text);
    assert.match(text, /wall time limit of 3000 ms/);
    await bystander();
    const endless = await fetch(`${mesh.httpUrl}/atk/endless`);
    assert.equal(endless.status, 200, 'the stream started');
    const reader = endless.body!.getReader();
    let received = 0;
    let cut = false;
    // Bounded: the wall limit cuts it after ~3 s of 1 KiB per 5 ms (about 600 KiB); 64 MiB means no cut.
    while (received < 64 << 20) {
      const chunk = await reader.read().catch(() => undefined);
      if (!chunk || chunk.done) {
        cut = true;
        break;
      }
      received += chunk.value.byteLength;
    }
    assert.ok(cut, `the endless response was cut (${received} bytes received)`);
    await bystander();
    await itself();
    const log = (await mesh.cli(['logs', 'attacker/nodeserver'])).stdout;
    assert.match(log, /wall time limit/);
  });

  test('a handler for a port no server listens on fails with a clear error, in the tenant log', async () => {
    const res = await fetch(`${mesh.httpUrl}/atk/unserved`);
    assert.equal(res.status, 500, await res.text());
    const log = await waitFor('the log line', async () => {
      const out = (await mesh.cli(['logs', 'attacker/nodeserver'])).stdout;
      return /Http server with port 9 not found/.test(out) ? out : undefined;
    });
    assert.match(log, /check if server\.listen\(\) was called with the same port \(9\)/);
    await bystander();
    await itself();
  });
});
