import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { readBody, responseProblem, writeWireResponse } from './forward.ts';

test('responseProblem: only what HTTP/1.1 can carry leaves ingress, whatever a (compromised) sandbox answers', () => {
  const ok = { status: 200, statusText: 'Caf\u00e9 OK', headers: [['x-a', 'caf\u00e9\tb']], body: new Uint8Array(1) };
  assert.equal(responseProblem(ok), undefined);
  assert.equal(responseProblem({ ...ok, body: null, stream: new ReadableStream() }), undefined);
  const bad: unknown[] = [
    undefined,
    null,
    'a string',
    { ...ok, statusText: '\u20ac' },
    { ...ok, statusText: 'a\r\nx-injected: 1' },
    { ...ok, statusText: 'a\u0001' },
    { ...ok, headers: [['x-a', '\u20ac']] },
    { ...ok, headers: [['x-a', 'a\u0001']] },
    { ...ok, headers: [['x a', 'b']] },
    { ...ok, status: 700 },
    { ...ok, body: 'not bytes' },
    { ...ok, body: null, stream: {} },
  ];
  for (const r of bad) assert.equal(typeof responseProblem(r), 'string', JSON.stringify(r));
});

test('writeWireResponse: a small body leaves with its head as one piece (one string), byte for byte; a big one as it is', async () => {
  const small = Uint8Array.from({ length: 256 }, (_, i) => i); // every byte value: the latin1 string must carry each unchanged
  const big = new Uint8Array(64 * 1024).fill(0xe9);
  /** Pieces handed to the socket: a writev's chunks, or 1 for a write. */
  let pieces = 0;
  const server = createServer((req, res) => {
    const socket = res.socket as Socket & { _writeGeneric(...args: unknown[]): unknown };
    const writeGeneric = socket._writeGeneric;
    socket._writeGeneric = (...args: unknown[]) => {
      pieces += args[0] ? (args[1] as unknown[]).length : 1;
      return writeGeneric.apply(socket, args);
    };
    const body = req.url === '/big' ? big : small;
    void writeWireResponse(res, { status: 200, statusText: '', headers: [['content-type', 'application/octet-stream']], body }, 'request-id-1', 'GET');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const answer = await fetch(`${base}/small`);
    assert.deepEqual(new Uint8Array(await answer.arrayBuffer()), small);
    assert.equal(answer.headers.get('content-length'), '256');
    assert.equal(pieces, 1);
    assert.deepEqual(new Uint8Array(await (await fetch(`${base}/big`)).arrayBuffer()), big);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('readBody: a body read whole is the pieces the parser gave, not joined into a copy (the fast path sends them as they are)', async () => {
  const emitted: Buffer[] = [];
  const read: Buffer[] = [];
  const server = createServer(async (req, res) => {
    req.on('data', (chunk: Buffer) => emitted.push(chunk));
    read.push(...((await readBody(req)) ?? []));
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const body = Buffer.alloc(60_000, 0x61);
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    // The head and the body's first bytes, then the rest on a later turn: at least two pieces.
    socket.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    socket.write(body.subarray(0, 1000));
    await new Promise((r) => setTimeout(r, 50));
    socket.end(body.subarray(1000));
    await new Promise((r) => socket.on('close', r).resume());
    assert.ok(read.length >= 2, 'more than one piece');
    assert.ok(read.length === emitted.length && read.every((piece, i) => piece === emitted[i]), 'the very buffers the parser emitted');
    assert.ok(Buffer.concat(read).equals(body));
  } finally {
    server.close();
  }
});
